-- sess_create: create a session under a fresh id, with both of its timeouts.
-- KEYS[1] the session hash (must not exist)
-- ARGV[1] idle timeout in ms   ARGV[2] absolute timeout in ms
-- ARGV[3] created at, ms since the epoch ('0' = now)
-- ARGV[4] absolute deadline, ms since the epoch ('0' = created + absolute timeout)
-- ARGV[5..] field, value pairs (data fields 'd:<key>', metadata 'm:<name>')
-- Returns {1, created_ms, deadline_ms, now_ms}; {0} when the id is taken; {2} when the
-- given deadline has already passed.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0}
end
--!include _clock.lua
local now = now_ms()
local created = tonumber(ARGV[3])
if created == 0 then
  created = now
end
local deadline = tonumber(ARGV[4])
if deadline == 0 then
  deadline = created + tonumber(ARGV[2])
end
if deadline <= now then
  return {2}
end
if #ARGV > 4 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 5))
end
redis.call('HSET', KEYS[1], 'm:c', string.format('%.0f', created), 'm:s',
  string.format('%.0f', now), 'm:a', string.format('%.0f', deadline))
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.min(now + tonumber(ARGV[1]), deadline)))
return {1, created, deadline, now}
