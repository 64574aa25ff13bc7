-- KEYS[1]: the lease, KEYS[2]: the record (one hash slot). ARGV[1]: token, ARGV[2]: framed record ("" deletes),
-- ARGV[3]: ttl ms or "". Returns 1 when the lease was ours (released, record written), 0 (nothing written) otherwise.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == '' then
  redis.call('DEL', KEYS[2])
else
  put(KEYS[2], ARGV[2], ARGV[3])
end
return 1
