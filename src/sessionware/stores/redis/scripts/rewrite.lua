-- KEYS[1]: the log list. ARGV: triples of (seq, expected entry, new entry), entries unframed.
-- Rewrites each entry in place (LSET keeps the list's expiry) if it still holds the expected
-- entry or already the new one. Returns one code per triple: 1 rewritten, 0 changed, -1 missing.
local key = KEYS[1]
local len = redis.call('LLEN', key)
local results = {}
local function seq_at(i)
  local seq = tonumber(string.match(redis.call('LINDEX', key, i), '^(%d+):'))
  if not seq then
    error('SESSIONWARE_BADLOG log entry has no sequence number')
  end
  return seq
end
local first, contiguous = 0, true
if len > 0 then
  first = seq_at(-1) - len + 1
  contiguous = len == 1 or seq_at(0) == first
end
local function position(seq)  -- where entry `seq` is, or nil
  if len == 0 then return nil end
  local at
  if contiguous then
    at = seq - first
  else  -- gaps (a pop, then an append): bisection on the framed numbers
    local lo, hi = 0, len
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if seq_at(mid) < seq then lo = mid + 1 else hi = mid end
    end
    at = lo
  end
  if at < 0 or at >= len or seq_at(at) ~= seq then return nil end
  return at
end
for i = 1, #ARGV, 3 do
  local at = position(tonumber(ARGV[i]))
  if not at then
    results[#results + 1] = -1
  else
    local head = ARGV[i] .. ':'
    local stored = redis.call('LINDEX', key, at)
    if stored == head .. ARGV[i + 1] or stored == head .. ARGV[i + 2] then
      redis.call('LSET', key, at, head .. ARGV[i + 2])
      results[#results + 1] = 1
    else
      results[#results + 1] = 0
    end
  end
end
return results
