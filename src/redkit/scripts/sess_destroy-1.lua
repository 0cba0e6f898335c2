-- sess_destroy: end a session, optionally only if it belongs to the given user.
-- KEYS[1] the session hash
-- ARGV[1] the user it must belong to ('' = any owner)
-- Returns 1 when a session was ended, 0 when there was none (or it was someone else's);
-- -1 when the key holds another Redis type (it is left alone).
--!include _hash.lua
local absent = not_a_hash(KEYS[1])
if absent then
  return absent
end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'm:u') ~= ARGV[1] then
  return 0
end
return redis.call('DEL', KEYS[1])
