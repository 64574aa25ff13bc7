-- KEYS[1]: the log list, KEYS[2]: its high-water mark. Returns the highest number ever assigned.
local mark = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local tail = redis.call('LINDEX', KEYS[1], -1)
if tail then
  local seq = tonumber(string.match(tail, '^(%d+):'))
  if not seq then
    return redis.error_reply('SESSIONWARE_BADLOG newest log entry has no sequence number')
  end
  if seq > mark then mark = seq end
end
return mark
