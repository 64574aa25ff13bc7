-- KEYS[1]: a record. ARGV[1]: expected version. Returns 1 when deleted (or missing as expected), else the version found.
local found = version(redis.call('GET', KEYS[1]))
if type(found) == 'table' then return found end
if found ~= ARGV[1] then return found end
redis.call('DEL', KEYS[1])
return 1
