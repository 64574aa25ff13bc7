-- KEYS[1]: a record, KEYS[2]: a log list, KEYS[3] (optional): its high-water mark (one hash slot).
-- ARGV[1]: the record's expected version, ARGV[2]: the framed record to write, ARGV[3]: its ttl ms or "",
-- ARGV[4]: the log's expected highest number, ARGV[5]: the log's ttl ms or "", ARGV[6]: max_len or "",
-- ARGV[7..]: encoded entries. Returns 1 when both were as expected (appended and written), else 0.
local found = version(redis.call('GET', KEYS[1]))
if type(found) == 'table' then return found end
if found ~= ARGV[1] then return 0 end
local last = last_assigned(KEYS[2], KEYS[3])
if not last then
  return redis.error_reply('SESSIONWARE_BADLOG newest log entry has no sequence number')
end
if last ~= tonumber(ARGV[4]) then return 0 end
push(KEYS[2], KEYS[3], last, 7, ARGV[5], ARGV[6])
put(KEYS[1], ARGV[2], ARGV[3])
return 1
