-- queue_renew: extend the lease of every job a worker holds (one call per worker).
-- KEYS[1] workers (zset: worker id -> lease end, ms)
-- ARGV[1] worker id   ARGV[2] lease ms
-- Returns 1 when renewed, 0 when the lease had ended and the worker's jobs were taken back
-- (its unfinished jobs' results will be refused; it is registered again).
--!include _clock.lua
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[2]), ARGV[1])
if known then
  return 1
end
return 0
