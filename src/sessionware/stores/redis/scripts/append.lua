-- KEYS[1]: the log list, KEYS[2] (optional): its high-water mark. ARGV[1]: ttl in ms or "",
-- ARGV[2]: max_len or "", ARGV[3..]: encoded entries.
-- Returns the sequence number that preceded the appended entries.
local key, top = KEYS[1], KEYS[2]
local last = last_assigned(key, top)
if not last then
  return redis.error_reply('SESSIONWARE_BADLOG newest log entry has no sequence number')
end
push(key, top, last, 3, ARGV[1], ARGV[2])
return last
