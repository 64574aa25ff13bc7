-- KEYS[1]: the index (a sorted set). ARGV: score, member, ttl in ms ("" for none).
index_put(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 1
