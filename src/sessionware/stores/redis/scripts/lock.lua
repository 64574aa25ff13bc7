-- KEYS[1]: the lease, KEYS[2]: the record (one hash slot). ARGV[1]: token, ARGV[2]: lease ms.
-- Returns {1, record or nil} when the lease is ours (taking it again with our own token is a no-op,
-- so the call may be repeated), else {0, ms the lease has left}.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) or redis.call('GET', KEYS[1]) == ARGV[1] then
  local rec = redis.pcall('GET', KEYS[2])
  if type(rec) == 'table' and rec.err then
    redis.call('DEL', KEYS[1])
    return rec
  end
  return {1, rec}
end
return {0, redis.call('PTTL', KEYS[1])}
