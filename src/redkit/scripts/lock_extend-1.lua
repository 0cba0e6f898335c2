-- lock_extend: reset the lock's ttl, only if the caller still owns it.
-- KEYS[1] the lock
-- ARGV[1] owner token   ARGV[2] new ttl in milliseconds
-- Returns 1 when extended, 0 when the caller no longer owned it.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
