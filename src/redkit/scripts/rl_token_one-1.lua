-- rl_token_one: a hit on a single token bucket (the common one-limit policy).
-- Same key and fields as rl_token.
-- KEYS[1]  a hash: tk = tokens left, ts = time of that count (us)
-- ARGV[1]  cost, 1 <= cost <= capacity (larger costs go to rl_token)
-- ARGV[2]  capacity (burst)     ARGV[3]  refill rate (tokens per us)
-- Returns {allowed 0|1, retry_after_us, remaining, reset_after_us}, as rl_token
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local cost, cap, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'tk', 'ts')
local tk, ts = tonumber(h[1]), tonumber(h[2])
if tk == nil or ts == nil then
  tk = cap
else
  tk = math.min(cap, tk + math.max(0, now - ts) * rate)
end
if tk < cost then
  return {0, math.ceil((cost - tk) / rate), math.floor(tk), math.ceil((cap - tk) / rate)}
end
tk = tk - cost
local full = (cap - tk) / rate
redis.call('HSET', KEYS[1], 'tk', tk, 'ts', now)  -- numbers are written so they read back exactly
redis.call('PEXPIREAT', KEYS[1], math.ceil((now + full) / 1000) + 1)
return {1, 0, math.floor(tk), math.ceil(full)}
