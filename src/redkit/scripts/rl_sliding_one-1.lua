-- rl_sliding_one: a hit on a single sliding window counter (the common one-limit policy).
-- Same key and fields as rl_sliding.
-- KEYS[1]  a hash: w = window number, c = count in it, p = count in window w-1
-- ARGV[1]  cost, 1 <= cost <= amount (larger costs go to rl_sliding)
-- ARGV[2]  amount     ARGV[3]  period (us)
-- Returns {allowed 0|1, retry_after_us, remaining, reset_after_us}, as rl_sliding
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local cost, amount, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local win = math.floor(now / period)
local elapsed = now - win * period
local h = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w, cur, prev = tonumber(h[1]) or -1, tonumber(h[2]) or 0, tonumber(h[3]) or 0
if w == win - 1 then prev, cur = cur, 0 elseif w ~= win then prev, cur = 0, 0 end
local est = prev * (period - elapsed) / period + cur
if est + cost > amount then
  local wait
  if cur + cost <= amount and prev > 0 then
    wait = (period - elapsed) - (amount - cur - cost) * period / prev
  else  -- cur >= 1 here, since cost <= amount
    wait = (period - elapsed) + math.max(0, period - (amount - cost) * period / cur)
  end
  local reset = 0
  if cur > 0 then reset = 2 * period - elapsed elseif prev > 0 then reset = period - elapsed end
  return {0, math.ceil(wait), math.max(0, math.floor(amount - est)), math.ceil(reset)}
end
redis.call('HSET', KEYS[1], 'w', win, 'c', cur + cost, 'p', prev)
redis.call('PEXPIREAT', KEYS[1], math.ceil((win + 2) * period / 1000))  -- the next window's end
return {1, 0, math.max(0, math.floor(amount - est - cost)), math.ceil(2 * period - elapsed)}
