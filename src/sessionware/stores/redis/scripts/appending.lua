-- Shared by append and fenced: the highest number assigned in a log list, and the append after it.
-- The number of the newest entry of list `key`, raised to its high-water mark `top` (left by a
-- pop or a clear); false if the newest entry has no number.
local function last_assigned(key, top)
  local last = 0
  local tail = redis.call('LINDEX', key, -1)
  if tail then
    last = tonumber(string.match(tail, '^(%d+):'))
    if not last then return false end
  end
  if top then
    local mark = tonumber(redis.call('GET', top) or '0') or 0
    if mark > last then last = mark end
  end
  return last
end

-- Push ARGV[first..] numbered after `last`; trim to `max_len` and set the expiry `ms` unless "".
local function push(key, top, last, first, ms, max_len)
  local n = #ARGV - first + 1
  local batch = {}
  for i = 1, n do
    batch[#batch + 1] = string.format('%d:', last + i) .. ARGV[first + i - 1]
    if #batch == 1000 or i == n then
      redis.call('RPUSH', key, unpack(batch))
      batch = {}
    end
  end
  if top and n > 0 then
    redis.call('DEL', top)  -- the newest entry's number is the counter again
  end
  if max_len ~= '' then
    redis.call('LTRIM', key, -tonumber(max_len), -1)
  end
  if ms ~= '' then
    redis.call('PEXPIRE', key, ms)
    if top and n == 0 then redis.call('PEXPIRE', top, ms) end
  end
end
