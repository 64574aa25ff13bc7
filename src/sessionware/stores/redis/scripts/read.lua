-- KEYS[1]: the log list. ARGV: after, before, last ("" for none). Returns the framed entries
-- with after < seq < before, the newest `last` of them, oldest first.
local key = KEYS[1]
local len = redis.call('LLEN', key)
if len == 0 then return {} end
local newest = tonumber(string.match(redis.call('LINDEX', key, -1), '^(%d+):'))
if not newest then
  return redis.error_reply('SESSIONWARE_BADLOG newest log entry has no sequence number')
end
local first = newest - len + 1
local start, stop = 0, len
if ARGV[1] ~= '' then start = math.max(0, tonumber(ARGV[1]) - first + 1) end
if ARGV[2] ~= '' then stop = math.max(0, math.min(len, tonumber(ARGV[2]) - first)) end
if ARGV[3] ~= '' then start = math.max(start, stop - tonumber(ARGV[3])) end
if start >= stop then return {} end
return redis.call('LRANGE', key, start - len, stop - 1 - len)
