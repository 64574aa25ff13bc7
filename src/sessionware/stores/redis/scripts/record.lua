-- Helpers for scripts that read or write a record.
-- A record's version: the digits between "s1:" and the next ":", no leading zero.
local function version(rec)
  if not rec then return '0' end
  local v = string.match(rec, '^s1:([1-9]%d*):')
  if not v or #v > 19 then
    return redis.error_reply('SESSIONWARE_BADRECORD record has no s1 version frame')
  end
  return v
end

-- Write a framed record, with an expiry of `ms` milliseconds unless `ms` is "".
local function put(key, framed, ms)
  if ms == '' then
    redis.call('SET', key, framed)
  else
    redis.call('SET', key, framed, 'PX', ms)
  end
end
