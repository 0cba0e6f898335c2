-- rl_conc_release: give a slot back.
-- KEYS[1]  the sorted set of leases   ARGV[1]  lease id
-- Returns 1 when the lease was held, 0 when it had already expired (or was never taken).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local expiry = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
redis.call('ZREM', KEYS[1], ARGV[1])
if expiry ~= nil and expiry > now then return 1 end
return 0
