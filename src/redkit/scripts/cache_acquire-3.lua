-- cache_acquire: take the fill lock of one cache key, or register as a waiter for its fill.
-- KEYS[1] the entry   KEYS[2] the fill lock   KEYS[3] the waiter count
-- ARGV[1] owner token   ARGV[2] lock ttl in milliseconds
-- ARGV[3] "1" to register as a waiter when the lock is taken, "0" to only try
-- Returns {got, entry, lock_pttl}, always three elements:
--   got        1 when the caller now holds the lock, 0 when another loader does
--   entry      the entry's bytes when got is 1 (so the caller can re-check it in the same
--              round trip), else nil
--   lock_pttl  the holder's remaining lock time in ms when got is 0 (-1: no expiry,
--              -2: released since), else 0
-- Idempotent per owner token: a retry after the reply was lost (a timeout after the server
-- ran it) finds the lock its own and gets it again, instead of waiting for itself.
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) or redis.call('GET', KEYS[2]) == ARGV[1] then
  return {1, redis.call('GET', KEYS[1]), 0}
end
if ARGV[3] == '1' then
  redis.call('INCR', KEYS[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return {0, false, redis.call('PTTL', KEYS[2])}
