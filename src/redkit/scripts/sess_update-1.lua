-- sess_update: write and delete single fields of a live session (never the whole blob, so
-- concurrent requests that change different keys keep each other's writes).
-- KEYS[1] the session hash
-- ARGV[1] idle timeout in ms
-- ARGV[2] a new expiry for the session, in ms from now ('' keeps the current one)
-- ARGV[3] n, the number of field/value pairs that follow
-- ARGV[4 .. 3+2n] field, value pairs to set   ARGV[4+2n ..] fields to delete
-- A session ends at its absolute deadline 'm:a' or at its own expiry 'm:x' (when set),
-- whichever comes first; a new expiry never reaches past the absolute deadline.
-- Returns {1, expiry ms since the epoch (0 = none)} when written, {0} when the session no
-- longer exists (expired or ended: it is not recreated); -1 when the key holds another
-- Redis type, -3 when its deadline or expiry is not a number (not written by redkit).
--!include _clock.lua
--!include _session_ends.lua
local absolute, expiry = session_ends(KEYS[1])
if not absolute then
  return {0}
end
if absolute < 0 then
  return absolute
end
local now = now_ms()
if now >= absolute or (expiry and now >= expiry) then
  redis.call('DEL', KEYS[1])
  return {0}
end
if ARGV[2] ~= '' then
  expiry = now + tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'm:x', string.format('%.0f', expiry))
end
local deadline = earliest(absolute, expiry)
local n = tonumber(ARGV[3])
if n > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + 2 * n))
end
if #ARGV >= 4 + 2 * n then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 4 + 2 * n))
end
redis.call('HSET', KEYS[1], 'm:s', string.format('%.0f', now))
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.min(now + tonumber(ARGV[1]), deadline)))
return {1, expiry or 0}
