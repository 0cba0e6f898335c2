-- sess_update: write and delete single fields of a live session (never the whole blob, so
-- concurrent requests that change different keys keep each other's writes).
-- KEYS[1] the session hash
-- ARGV[1] idle timeout in ms   ARGV[2] n, the number of field/value pairs that follow
-- ARGV[3 .. 2+2n] field, value pairs to set   ARGV[3+2n ..] fields to delete
-- Returns 1 when written, 0 when the session no longer exists (expired or ended: it is
-- not recreated); -1 when the key holds another Redis type, -3 when its deadline is not
-- a number (not written by redkit).
--!include _clock.lua
local deadline = redis.pcall('HGET', KEYS[1], 'm:a')
if type(deadline) == 'table' and deadline.err then
  return -1
end
if not deadline then
  return 0
end
deadline = tonumber(deadline)
if not deadline then
  return -3
end
local now = now_ms()
if now >= deadline then
  redis.call('DEL', KEYS[1])
  return 0
end
local n = tonumber(ARGV[2])
if n > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 3, 2 + 2 * n))
end
if #ARGV >= 3 + 2 * n then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 3 + 2 * n))
end
redis.call('HSET', KEYS[1], 'm:s', string.format('%.0f', now))
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.min(now + tonumber(ARGV[1]), deadline)))
return 1
