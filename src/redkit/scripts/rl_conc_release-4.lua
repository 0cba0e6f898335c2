-- rl_conc_release: give a slot back (or a place in the queue), and wake the waiters that
-- may now take the free slots, first come first served.
-- KEYS[1]  leases   KEYS[2]  the queue of waiters   KEYS[3]  the waiters' registrations
-- KEYS[4]  the prefix of each waiter's wake-up list (see rl_conc_acquire)
-- ARGV[1]  lease id   ARGV[2]  limit   ARGV[3]  how long an unclaimed wake-up lives (ms)
-- Returns 1 when the lease was held, 0 when it had already expired (or was never taken).
--!include _clock.lua
--!include _conc.lua
local now = now_us()
local leases, queue, seen, id = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local expiry = tonumber(redis.call('ZSCORE', leases, id))
redis.call('ZREM', leases, id)
redis.call('ZREM', queue, id)
redis.call('ZREM', seen, id)
redis.call('DEL', KEYS[4] .. id)
tidy(leases, queue, seen, now)
local free = tonumber(ARGV[2]) - redis.call('ZCARD', leases)
if free > 0 then
  for _, waiter in ipairs(redis.call('ZRANGE', queue, 0, free - 1)) do
    local wake = KEYS[4] .. waiter
    redis.call('RPUSH', wake, 1)
    redis.call('LTRIM', wake, 0, 0)
    redis.call('PEXPIRE', wake, ARGV[3])
  end
end
if expiry ~= nil and expiry > now then return 1 end
return 0
