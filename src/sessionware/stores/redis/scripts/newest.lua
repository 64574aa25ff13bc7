-- Shared by pop, clear and last_seq: the newest entry of a log list with its number (nil and 0
-- when the list is empty), and a high-water mark's number (0 when there is none).
local function newest(key)
  local tail = redis.call('LINDEX', key, -1)
  if not tail then return nil, 0 end
  local seq = tonumber(string.match(tail, '^(%d+):'))
  if not seq then
    error('SESSIONWARE_BADLOG newest log entry has no sequence number')
  end
  return tail, seq
end
local function mark_of(top)
  return tonumber(redis.call('GET', top) or '0') or 0
end
