-- Shared by index_put and fenced: add or move `member` of sorted set `key` to `score`; the set's
-- expiry never comes sooner, and no ttl (`ms` "") makes it permanent.
local function index_put(key, score, member, ms)
  local existed = redis.call('EXISTS', key)
  redis.call('ZADD', key, score, member)
  if ms == '' then
    redis.call('PERSIST', key)
  elseif existed == 0 then
    redis.call('PEXPIRE', key, ms)
  else
    local left = redis.call('PTTL', key)
    if left >= 0 and left < tonumber(ms) then redis.call('PEXPIRE', key, ms) end
  end
end
