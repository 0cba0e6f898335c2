-- rl_gcra_one: a hit on a single GCRA limit (the common one-limit policy): TIME, GET, SET.
-- Same key and stored value as rl_gcra.
-- KEYS[1]  the theoretical arrival time (TAT, us) of the limit, a string
-- ARGV[1]  increment: cost * emission interval (us)
-- ARGV[2]  slack: (burst - cost) * emission interval (us); the hit is admitted when the
--          TAT is at most this far ahead of now (the caller sends cost > burst to rl_gcra)
-- Returns one integer: ahead = TAT - now in nanoseconds, after the hit when admitted (exact:
-- a TAT near the epoch's 2^50 us is a multiple of a quarter microsecond);
--   admitted: ahead (>= 0)     rejected: -1 - ahead (TAT unchanged)
-- (a number handed to redis.call is written so that it reads back exactly, as with
-- rl_gcra's string.format('%.17g'); PXAT spares the server rewriting PX for replication)
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
if tat - now > tonumber(ARGV[2]) then
  return -1 - (tat - now) * 1000
end
tat = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], tat, 'PXAT', math.ceil(tat / 1000) + 1)
return (tat - now) * 1000
