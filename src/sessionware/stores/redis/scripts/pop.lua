-- KEYS[1]: the log list, KEYS[2]: its high-water mark. Removes the newest entry and returns it
-- framed (false if the log holds none); the mark, with the list's expiry, keeps its number from
-- being assigned again.
local key, top = KEYS[1], KEYS[2]
local tail = redis.call('LINDEX', key, -1)
if not tail then return false end
local seq = tonumber(string.match(tail, '^(%d+):'))
if not seq then
  return redis.error_reply('SESSIONWARE_BADLOG newest log entry has no sequence number')
end
local mark = tonumber(redis.call('GET', top) or '0') or 0
if seq > mark then
  local ttl = redis.call('PTTL', key)
  if ttl > 0 then
    redis.call('SET', top, seq, 'PX', ttl)
  else
    redis.call('SET', top, seq)
  end
end
redis.call('RPOP', key)
return tail
