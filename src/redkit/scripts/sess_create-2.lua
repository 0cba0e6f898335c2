-- sess_create: create a session under a fresh id, with both of its timeouts.
-- KEYS[1] the session hash (must not exist)
-- KEYS[2] the id's end mark: while it exists, a session of this id was ended moments ago
--         (sess_destroy leaves it), and a creation still on its way must not bring it back
-- ARGV[1] idle timeout in ms   ARGV[2] absolute timeout in ms
-- ARGV[3] created at, ms since the epoch ('0' = now)
-- ARGV[4] absolute deadline, ms since the epoch ('0' = created + absolute timeout)
-- ARGV[5] the session's own expiry, in ms from now ('' = none, or the 'm:x' field below)
-- ARGV[6] the creator's token, kept in field 'm:n': the same creation run again (a retry
--         after its reply was lost) gets the first answer back
-- ARGV[7] '' to create; 'redo' to rewrite, with these fields, the session this token
--         created (only while it exists)
-- ARGV[8..] field, value pairs (data fields 'd:<key>', metadata 'm:<name>'; 'm:x' carries
-- an expiry over from a rotated session, ms since the epoch)
-- The session ends at the absolute deadline or at its own expiry, whichever comes first.
-- Returns {1, created_ms, deadline_ms, now_ms, expiry_ms (0 = none)}; {0} when the id is
-- taken by another session; {2} when the session would already have ended, was ended
-- meanwhile (the end mark), or (redo) no longer exists.
local mine = redis.pcall('HGET', KEYS[1], 'm:n') == ARGV[6]
if ARGV[7] == 'redo' then
  if not mine then
    return {2}
  end
  redis.call('DEL', KEYS[1])
elseif mine then
  local f = redis.call('HMGET', KEYS[1], 'm:c', 'm:a', 'm:s', 'm:x')
  return {1, tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4]) or 0}
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  return {0}
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  return {2}
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
if #ARGV > 7 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 8))
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'm:x', string.format('%.0f', now + tonumber(ARGV[5])))
end
local expiry = tonumber(redis.call('HGET', KEYS[1], 'm:x'))
local ends = deadline
if expiry and expiry < ends then
  ends = expiry
end
if ends <= now then
  redis.call('DEL', KEYS[1])
  return {2}
end
redis.call('HSET', KEYS[1], 'm:c', string.format('%.0f', created), 'm:s',
  string.format('%.0f', now), 'm:a', string.format('%.0f', deadline), 'm:n', ARGV[6])
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.min(now + tonumber(ARGV[1]), ends)))
return {1, created, deadline, now, expiry or 0}
