-- sess_destroy: end a session, optionally only if it belongs to the given user.
-- KEYS[1] the session hash
-- KEYS[2] the id's end mark, left when there was no session to end: a login or rotation
--         sends the creation of its new session and the entry in the user's index at once,
--         so "end all" may find the id listed before the session exists; the mark stops
--         that creation (sess_create) from bringing it back after this end
-- ARGV[1] the user it must belong to ('' = any owner)
-- ARGV[2] how long the mark lives, ms (longer than a creation can stay on its way)
-- Returns 1 when a session was ended, 0 when there was none (or it was someone else's);
-- -1 when the key holds another Redis type (it is left alone).
--!include _hash.lua
local absent = not_a_hash(KEYS[1])
if absent == 0 then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('HSET', KEYS[2], 'm:e', '1')
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  end
  return 0
end
if absent then
  return absent
end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'm:u') ~= ARGV[1] then
  return 0
end
return redis.call('DEL', KEYS[1])
