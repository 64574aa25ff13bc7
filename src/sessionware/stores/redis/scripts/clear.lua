-- KEYS[1]: the log list, KEYS[2]: its high-water mark. Removes every entry; the mark, with the
-- list's expiry, keeps the numbering. Returns the highest number ever assigned (0: no log).
local key, top = KEYS[1], KEYS[2]
local mark = tonumber(redis.call('GET', top) or '0') or 0
local tail = redis.call('LINDEX', key, -1)
if not tail then return mark end
local seq = tonumber(string.match(tail, '^(%d+):'))
if not seq then
  return redis.error_reply('SESSIONWARE_BADLOG newest log entry has no sequence number')
end
if seq > mark then mark = seq end
local ttl = redis.call('PTTL', key)
redis.call('DEL', key)
if ttl > 0 then
  redis.call('SET', top, mark, 'PX', ttl)
else
  redis.call('SET', top, mark)
end
return mark
