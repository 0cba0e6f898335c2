-- lock_extend: reset the lock's ttl, only if the caller still owns it.
-- KEYS[1] the lock
-- ARGV[1] owner token   ARGV[2] new ttl in milliseconds
-- Returns 1 when extended, 0 when the caller no longer owned it; -1 when the lock key
-- holds another Redis type.
local holder = redis.pcall('GET', KEYS[1])
if type(holder) == 'table' and holder.err then
  return -1
end
if holder ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
