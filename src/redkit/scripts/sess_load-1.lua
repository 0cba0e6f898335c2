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
