-- rl_conc_extend: renew a lease that is still held.
-- KEYS[1]  the sorted set of leases   ARGV[1]  lease id   ARGV[2]  new lease (us from now)
-- Returns 1 when renewed, 0 when the lease had expired (its slot may be someone else's).
--!include _clock.lua
local now = now_us()
local expiry = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if expiry == nil or expiry <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', string.format('%d', now + lease), ARGV[1])
local keep = math.ceil(lease / 1000) + 1
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
return 1
