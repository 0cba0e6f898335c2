-- cache_acquire: take the fill lock of one cache key, or register as a waiter for its fill.
-- KEYS[1] the entry   KEYS[2] the fill lock   KEYS[3] the waiter count
-- ARGV[1] owner token   ARGV[2] lock ttl in milliseconds
-- ARGV[3] "1" to register as a waiter when the lock is taken, "0" to only try
-- Returns {1, entry or false} when the lock was taken (the entry lets the caller re-check
-- in the same round trip), {0, lock_pttl_ms} when another loader holds it.
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('GET', KEYS[1])}
end
if ARGV[3] == '1' then
  redis.call('INCR', KEYS[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return {0, redis.call('PTTL', KEYS[2])}
