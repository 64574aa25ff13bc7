-- KEYS[1]: the log list. ARGV: after, before, last ("" for none). Returns the framed entries
-- with after < seq < before, the newest `last` of them, oldest first.
local key = KEYS[1]
local len = redis.call('LLEN', key)
if len == 0 then return {} end
local function seq_at(i)
  local seq = tonumber(string.match(redis.call('LINDEX', key, i), '^(%d+):'))
  if not seq then
    error('SESSIONWARE_BADLOG log entry has no sequence number')
  end
  return seq
end
local newest = seq_at(-1)
local first = newest - len + 1
local start, stop = 0, len
if len == 1 or seq_at(0) == first then
  -- One run of numbers: positions follow from them.
  if ARGV[1] ~= '' then start = math.max(0, tonumber(ARGV[1]) - first + 1) end
  if ARGV[2] ~= '' then stop = math.max(0, math.min(len, tonumber(ARGV[2]) - first)) end
else
  -- Gaps (a pop, then an append): find the positions by bisection.
  local function position(bound)  -- the first position whose number is at least bound
    local lo, hi = 0, len
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if seq_at(mid) < bound then lo = mid + 1 else hi = mid end
    end
    return lo
  end
  if ARGV[1] ~= '' then start = position(tonumber(ARGV[1]) + 1) end
  if ARGV[2] ~= '' then stop = position(tonumber(ARGV[2])) end
end
if ARGV[3] ~= '' then start = math.max(start, stop - tonumber(ARGV[3])) end
if start >= stop then return {} end
return redis.call('LRANGE', key, start - len, stop - 1 - len)
