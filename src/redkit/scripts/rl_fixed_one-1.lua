-- rl_fixed_one: a hit on a single fixed window (the common one-limit policy) in the fewest
-- calls: INCRBY, then PEXPIRE on the window's first hit or PTTL otherwise; a rejected hit
-- is undone by DECRBY in the same script, so it is never charged. Same key as rl_fixed.
-- KEYS[1]  the counter (a string; its TTL is the rest of the window)
-- ARGV[1]  cost, 1 <= cost <= amount (larger costs go to rl_fixed, which never writes them)
-- ARGV[2]  amount     ARGV[3]  period (ms)
-- Returns one integer (cheaper to reply than an array), with scale = amount + 1:
--   admitted: ttl_ms * scale + count           count: the window's count after this hit
--   rejected: -1 - (ttl_ms * scale + count)    count: left as it was
-- (the caller uses this script only when period_ms * scale + amount < 2^53)
local cost = tonumber(ARGV[1])
local c = redis.call('INCRBY', KEYS[1], cost)
local scale = tonumber(ARGV[2]) + 1
if c == cost then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return tonumber(ARGV[3]) * scale + c
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  -- a counter without an expiry (not one redkit wrote): start a fresh window
  redis.call('SET', KEYS[1], cost, 'PX', ARGV[3])
  return tonumber(ARGV[3]) * scale + cost
end
if c >= scale then
  redis.call('DECRBY', KEYS[1], cost)
  return -1 - (ttl * scale + c - cost)
end
return ttl * scale + c
