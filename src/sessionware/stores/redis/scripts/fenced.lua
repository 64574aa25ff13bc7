-- KEYS[1]: a record, KEYS[2]: a log list, then (optional) its high-water mark, then (optional, when
-- ARGV[7] is not "") a sorted-set index; all in one hash slot.
-- ARGV[1]: the record's expected version, ARGV[2]: the framed record to write, ARGV[3]: its ttl ms or "",
-- ARGV[4]: the log's expected highest number, ARGV[5]: the log's ttl ms or "", ARGV[6]: max_len or "",
-- ARGV[7..9]: the index's score ("" for no index), member and ttl ms or "", ARGV[10..]: encoded entries.
-- Returns 1 when both were as expected (appended, written, indexed), else 0.
local count = #KEYS
local index
if ARGV[7] ~= '' then
  index = KEYS[count]
  count = count - 1
end
local top
if count >= 3 then top = KEYS[3] end
local found = version(redis.call('GET', KEYS[1]))
if type(found) == 'table' then return found end
if found ~= ARGV[1] then return 0 end
local last = last_assigned(KEYS[2], top)
if not last then
  return redis.error_reply('SESSIONWARE_BADLOG newest log entry has no sequence number')
end
if last ~= tonumber(ARGV[4]) then return 0 end
push(KEYS[2], top, last, 10, ARGV[5], ARGV[6])
put(KEYS[1], ARGV[2], ARGV[3])
if index then index_put(index, ARGV[7], ARGV[8], ARGV[9]) end
return 1
