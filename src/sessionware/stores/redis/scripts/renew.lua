-- KEYS[1]: the lease. ARGV[1]: token, ARGV[2]: lease ms. Returns 1 if the lease was ours and is extended.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
