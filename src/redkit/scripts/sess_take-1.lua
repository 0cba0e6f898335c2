-- sess_take: read a session and delete it in one step (the first half of an id rotation:
-- from here on the old id is dead, whatever happens next).
-- KEYS[1] the session hash
-- Returns the hash as HGETALL returns it; {} when it did not exist or had passed its
-- absolute deadline. -1 when the key holds another Redis type, -3 when its deadline is
-- not a number (not written by redkit); nothing is deleted then.
--!include _clock.lua
local deadline = redis.pcall('HGET', KEYS[1], 'm:a')
if type(deadline) == 'table' and deadline.err then
  return -1
end
if not deadline then
  return {}
end
deadline = tonumber(deadline)
if not deadline then
  return -3
end
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
if now_ms() >= deadline then
  return {}
end
return fields
