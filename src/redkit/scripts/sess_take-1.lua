-- sess_take: read a session and delete it in one step (the first half of an id rotation:
-- from here on the old id is dead, whatever happens next).
-- KEYS[1] the session hash
-- Returns the hash as HGETALL returns it, or {} when it did not exist or had ended (past
-- its absolute deadline 'm:a' or its own expiry 'm:x'). -1 when the key holds another
-- Redis type, -3 when its deadline or expiry is not a number (not written by redkit);
-- nothing is deleted then.
--!include _clock.lua
local ends = redis.pcall('HMGET', KEYS[1], 'm:a', 'm:x')
if ends.err then
  return -1
end
if not ends[1] then
  return {}
end
local deadline, expiry = tonumber(ends[1]), tonumber(ends[2])
if not deadline or (ends[2] and not expiry) then
  return -3
end
if expiry and expiry < deadline then
  deadline = expiry
end
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
if now_ms() >= deadline then
  return {}
end
return fields
