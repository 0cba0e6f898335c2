-- sess_take: read a session and delete it in one step (the first half of an id rotation:
-- from here on the old id is dead, whatever happens next).
-- KEYS[1] the session hash
-- Returns the hash as HGETALL returns it, or {} when it did not exist or had ended (past
-- its absolute deadline 'm:a' or its own expiry 'm:x'). -1 when the key holds another
-- Redis type, -3 when its deadline or expiry is not a number (not written by redkit);
-- nothing is deleted then.
--!include _clock.lua
--!include _session_ends.lua
local absolute, expiry = session_ends(KEYS[1])
if not absolute then
  return {}
end
if absolute < 0 then
  return absolute
end
local deadline = earliest(absolute, expiry)
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
if now_ms() >= deadline then
  return {}
end
return fields
