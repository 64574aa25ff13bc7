-- KEYS[1]: the log list, KEYS[2]: its high-water mark. Removes the newest entry and returns it
-- framed (false if the log holds none); the mark, with the list's expiry, keeps its number from
-- being assigned again.
local key, top = KEYS[1], KEYS[2]
local tail, seq = newest(key)
if not tail then return false end
if seq > mark_of(top) then
  local ttl = redis.call('PTTL', key)
  if ttl > 0 then
    redis.call('SET', top, seq, 'PX', ttl)
  else
    redis.call('SET', top, seq)
  end
end
redis.call('RPOP', key)
return tail
