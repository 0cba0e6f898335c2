-- rl_log_one: a hit on a single sliding log (the common one-limit policy): trim the expired
-- entries, count, add. Same key and members as rl_log.
-- KEYS[1]  a sorted set: one member per unit of cost, scored by its time (us)
-- ARGV[1]  cost, 1 <= cost <= amount (larger costs go to rl_log)
-- ARGV[2]  amount     ARGV[3]  period (us)
-- Returns admitted: remaining, one integer (the newest entry is now: the log is whole again
--                   after exactly one period);
--         rejected: {0, retry_after_us, remaining, reset_after_us}, as rl_log
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local cost, amount, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local c = redis.call('ZCARD', KEYS[1])
if c + cost > amount then
  -- the (c + cost - amount)-th oldest hit must leave the window first; c >= 1 here
  local idx = c + cost - amount - 1
  local oldest = redis.call('ZRANGE', KEYS[1], idx, idx, 'WITHSCORES')
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + period - now, math.max(0, amount - c),
          tonumber(newest[2]) + period - now}
end
-- members are unique: the same `now` means the same trim, so the count only grows
local ts = string.format('%d', now)
if cost == 1 then
  redis.call('ZADD', KEYS[1], ts, ts .. '-' .. (c + 1))
else
  local members = {}
  for j = 1, cost do
    members[#members + 1] = ts
    members[#members + 1] = ts .. '-' .. (c + j)
    if #members >= 1000 then
      redis.call('ZADD', KEYS[1], unpack(members))
      members = {}
    end
  end
  if #members > 0 then redis.call('ZADD', KEYS[1], unpack(members)) end
end
redis.call('PEXPIREAT', KEYS[1], math.ceil((now + period) / 1000) + 1)
return amount - c - cost
