-- sess_load: read a session and refresh its idle timeout, if it is still alive.
-- KEYS[1] the session hash
-- ARGV[1] idle timeout in ms
-- ARGV[2] client IP ('' keeps the stored one)   ARGV[3] user agent ('' keeps the stored one)
-- A session ends at its absolute deadline 'm:a' or at its own expiry 'm:x' (when set),
-- whichever comes first; the idle refresh never extends it past that.
-- Returns the hash as HGETALL returns it, after the touch; {} when the session does not
-- exist or has ended (then it is deleted). -1 when the key holds another Redis type, -3
-- when its deadline or expiry is not a number (not written by redkit).
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
local now = now_ms()
if now >= deadline then
  redis.call('DEL', KEYS[1])
  return {}
end
redis.call('HSET', KEYS[1], 'm:s', string.format('%.0f', now))
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'm:ip', ARGV[2])
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'm:ua', ARGV[3])
end
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.min(now + tonumber(ARGV[1]), deadline)))
return redis.call('HGETALL', KEYS[1])
