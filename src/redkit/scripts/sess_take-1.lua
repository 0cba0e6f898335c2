-- sess_take: read a session and delete it in one step (the first half of an id rotation:
-- from here on the old id is dead, whatever happens next).
-- KEYS[1] the session hash
-- Returns the hash as HGETALL returns it, or {} when it did not exist or had ended (past
-- its absolute deadline 'm:a' or its own expiry 'm:x').
local ends = redis.call('HMGET', KEYS[1], 'm:a', 'm:x')
local deadline = tonumber(ends[1])
if not deadline then
  return {}
end
if tonumber(ends[2]) and tonumber(ends[2]) < deadline then
  deadline = tonumber(ends[2])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
if now >= deadline then
  return {}
end
return fields
