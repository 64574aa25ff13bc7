-- KEYS[1]: the index (a sorted set). ARGV: limit, then the cursor's score and member ("" "" for none).
-- Returns up to `limit` members with their scores (flat), highest score first, ties by member
-- descending, strictly after the cursor in that order: the set's reverse rank order.
local key, limit = KEYS[1], tonumber(ARGV[1])
local start = 0
if ARGV[2] ~= '' then
  local score, member = ARGV[2], ARGV[3]
  local found = redis.call('ZSCORE', key, member)
  if found and tonumber(found) == tonumber(score) then
    start = redis.call('ZREVRANK', key, member) + 1
  else
    -- The cursor's member moved or went: bisect the members tied at its score by reverse rank,
    -- comparing bytes as the set orders them (Lua's own comparison follows the locale).
    local function before(a, b)  -- whether a sorts before b (is smaller)
      local n = math.min(#a, #b)
      for i = 1, n do
        local x, y = string.byte(a, i), string.byte(b, i)
        if x ~= y then return x < y end
      end
      return #a < #b
    end
    local lo = redis.call('ZCOUNT', key, '(' .. score, '+inf')
    local hi = lo + redis.call('ZCOUNT', key, score, score)
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if before(redis.call('ZREVRANGE', key, mid, mid)[1], member) then hi = mid else lo = mid + 1 end
    end
    start = lo
  end
end
return redis.call('ZREVRANGE', key, start, start + limit - 1, 'WITHSCORES')
