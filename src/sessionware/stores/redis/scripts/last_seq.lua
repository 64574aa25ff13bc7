-- KEYS[1]: the log list, KEYS[2]: its high-water mark. Returns the highest number ever assigned.
local _, seq = newest(KEYS[1])
return math.max(seq, mark_of(KEYS[2]))
