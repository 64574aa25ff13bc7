-- KEYS[1]: the index (a sorted set). ARGV: score, member, ttl in ms ("" for none).
-- Adds or moves the member; the set's expiry never comes sooner, and no ttl makes it permanent.
local key = KEYS[1]
local existed = redis.call('EXISTS', key)
redis.call('ZADD', key, ARGV[1], ARGV[2])
if ARGV[3] == '' then
  redis.call('PERSIST', key)
elseif existed == 0 then
  redis.call('PEXPIRE', key, ARGV[3])
else
  local left = redis.call('PTTL', key)
  if left >= 0 and left < tonumber(ARGV[3]) then redis.call('PEXPIRE', key, ARGV[3]) end
end
return 1
