-- lock_release: release the lock only if the caller still owns it, and wake one waiter.
-- KEYS[1] the lock   KEYS[2] the wake-up list that waiters block on (BLPOP)
-- KEYS[3] the last released owner token (kept a little while, so that a release retried
--         after its reply was lost still finds it was released by this owner)
-- ARGV[1] owner token   ARGV[2] how long an unclaimed wake-up signal and the last released
--         token live, in ms
-- Returns 1 when released (now, or by this owner's earlier attempt), 0 when the caller no
-- longer owned it (expired or taken over); -1 when the lock key holds another Redis type.
local holder = redis.pcall('GET', KEYS[1])
if type(holder) == 'table' and holder.err then
  return -1
end
if holder ~= ARGV[1] then
  if redis.call('GET', KEYS[3]) == ARGV[1] then
    return 1
  end
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
redis.call('RPUSH', KEYS[2], 1)
redis.call('LTRIM', KEYS[2], 0, 0)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
