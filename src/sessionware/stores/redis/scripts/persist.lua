-- KEYS[1]: a record. Removes its expiry; returns 1 if it exists.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PERSIST', KEYS[1])
return 1
