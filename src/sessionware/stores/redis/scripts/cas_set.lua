-- KEYS[1]: a record. ARGV[1]: expected version ("0": missing), ARGV[2]: framed record, ARGV[3]: ttl ms or "".
-- Returns 1 when written, else the version found.
local found = version(redis.call('GET', KEYS[1]))
if type(found) == 'table' then return found end
if found ~= ARGV[1] then return found end
put(KEYS[1], ARGV[2], ARGV[3])
return 1
