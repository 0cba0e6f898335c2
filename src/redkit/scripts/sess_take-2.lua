-- sess_take: read a session and delete it in one step (the first half of an id rotation:
-- from here on the old id is dead, whatever happens next).
-- KEYS[1] the session hash
-- KEYS[2] what the take left behind for a little while: the taken hash and field 'm:t',
--         the taker's token, so that a take retried after its reply was lost (a timeout
--         after the server ran it) gets the same session back, not "it has ended"
-- ARGV[1] the taker's token (fresh per rotation)   ARGV[2] how long KEYS[2] lives, in ms
-- Returns the hash as HGETALL returns it, or {} when it did not exist or had ended (past
-- its absolute deadline 'm:a' or its own expiry 'm:x'); for the same token again, within
-- ARGV[2], the same hash (with 'm:t'). -1 when the key holds another Redis type, -3 when
-- its deadline or expiry is not a number (not written by redkit); nothing is deleted then.
--!include _clock.lua
--!include _session_ends.lua
local absolute, expiry = session_ends(KEYS[1])
if not absolute then
  local taker = redis.pcall('HGET', KEYS[2], 'm:t')
  if taker == ARGV[1] then
    return redis.call('HGETALL', KEYS[2])
  end
  return {}
end
if absolute < 0 then
  return absolute
end
if now_ms() >= earliest(absolute, expiry) then
  redis.call('DEL', KEYS[1])
  return {}
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'm:t', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return redis.call('HGETALL', KEYS[2])
