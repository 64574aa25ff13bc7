-- KEYS[1]: the log list, KEYS[2] (optional): its high-water mark. ARGV[1]: ttl in ms or "",
-- ARGV[2]: max_len or "", ARGV[3..]: encoded entries.
-- Returns the sequence number that preceded the appended entries.
local key, top = KEYS[1], KEYS[2]
local last = 0
local tail = redis.call('LINDEX', key, -1)
if tail then
  last = tonumber(string.match(tail, '^(%d+):'))
  if not last then
    return redis.error_reply('SESSIONWARE_BADLOG newest log entry has no sequence number')
  end
end
if top then
  -- Left by a pop or a clear: numbers up to it were assigned already.
  local mark = tonumber(redis.call('GET', top) or '0') or 0
  if mark > last then last = mark end
end
local n = #ARGV - 2
local batch = {}
for i = 1, n do
  batch[#batch + 1] = string.format('%d:', last + i) .. ARGV[i + 2]
  if #batch == 1000 or i == n then
    redis.call('RPUSH', key, unpack(batch))
    batch = {}
  end
end
if top and n > 0 then
  redis.call('DEL', top)  -- the newest entry's number is the counter again
end
if ARGV[2] ~= '' then
  redis.call('LTRIM', key, -tonumber(ARGV[2]), -1)
end
if ARGV[1] ~= '' then
  redis.call('PEXPIRE', key, ARGV[1])
  if top and n == 0 then redis.call('PEXPIRE', top, ARGV[1]) end
end
return last
