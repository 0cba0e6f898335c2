-- sess_load: read a session and refresh its idle timeout, if it is still alive.
-- KEYS[1] the session hash
-- ARGV[1] idle timeout in ms
-- ARGV[2] client IP ('' keeps the stored one)   ARGV[3] user agent ('' keeps the stored one)
-- A session ends at its absolute deadline 'm:a' or at its own expiry 'm:x' (when set),
-- whichever comes first; the idle refresh never extends it past that.
-- Returns {} when the session does not exist or has ended (then it is deleted), else the
-- hash as HGETALL returns it, after the touch.
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
