-- KEYS[1]: the log list, KEYS[2]: its high-water mark. Removes every entry; the mark, with the
-- list's expiry, keeps the numbering. Returns the highest number ever assigned (0: no log).
local key, top = KEYS[1], KEYS[2]
local tail, seq = newest(key)
local mark = math.max(seq, mark_of(top))
if not tail then return mark end
local ttl = redis.call('PTTL', key)
redis.call('DEL', key)
if ttl > 0 then
  redis.call('SET', top, mark, 'PX', ttl)
else
  redis.call('SET', top, mark)
end
return mark
