-- lock_acquire: take the lock if it is free and hand out the next fencing token.
-- KEYS[1] the lock (a string holding the owner token)
-- KEYS[2] the fencing counter of this lock name (never expires)
-- ARGV[1] owner token   ARGV[2] ttl in milliseconds
-- Returns {1, fencing_token, 0} when acquired, {0, 0, holder_pttl_ms} when another owner
-- holds it (holder_pttl_ms -1: the holder's key has no expiry); -1 when a key holds
-- another Redis type, -2 when the counter is not an integer.
-- Fencing tokens: max(counter + 1, the server's clock in microseconds), so they grow
-- with every acquire and stay above every token handed out before a restart that lost
-- the counter (a server without persistence): those were no later than the clock of
-- their time (one acquire takes longer than a microsecond), unless the clock went back.
-- Idempotent per owner token: a retry of an acquire whose reply was lost (a timeout after
-- the server ran it) finds its own token and gets the same fencing token back (a new one
-- if the counter was lost meanwhile).
--!include _clock.lua
local holder = redis.pcall('GET', KEYS[1])
if type(holder) == 'table' and holder.err then
  return -1
end
local fence = redis.pcall('GET', KEYS[2])
if type(fence) == 'table' and fence.err then
  return -1
end
if fence and not tonumber(fence) then
  return -2
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if fence then
    return {1, tonumber(fence), 0}
  end
elseif holder then
  return {0, 0, redis.call('PTTL', KEYS[1])}
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
local token = now_us()
if fence and tonumber(fence) + 1 > token then
  token = tonumber(fence) + 1
end
redis.call('SET', KEYS[2], string.format('%.0f', token))
return {1, token, 0}
