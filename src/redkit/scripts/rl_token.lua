-- rl_token: token bucket (capacity = burst, refilled at amount per period), all or none.
-- KEYS[i]  a hash of limit i: tk = tokens left, ts = time of that count (us)
-- ARGV[1]  mode: 1 = hit, 0 = peek (never writes)      ARGV[2]  cost
-- ARGV[3i], ARGV[3i+1], ARGV[3i+2]  amount, period (microseconds), burst of limit i
-- Returns {allowed 0|1, retry_after_us (-1: never), then per limit: remaining, reset_after_us}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hit, cost = ARGV[1] == '1', tonumber(ARGV[2])
local n = #KEYS
local tokens = {}
local allowed, retry = 1, 0
for i = 1, n do
  local amount, period, cap = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  local rate = amount / period
  local h = redis.call('HMGET', KEYS[i], 'tk', 'ts')
  local tk, ts = tonumber(h[1]), tonumber(h[2])
  if tk == nil or ts == nil then
    tk = cap
  else
    tk = math.min(cap, tk + math.max(0, now - ts) * rate)
  end
  tokens[i] = tk
  if tk < cost then
    allowed = 0
    if cost > cap then
      retry = -1
    elseif retry >= 0 then
      local wait = math.ceil((cost - tk) / rate)
      if wait > retry then retry = wait end
    end
  end
end
local out = {allowed, allowed == 1 and 0 or retry}
for i = 1, n do
  local amount, period, cap = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  local rate = amount / period
  local tk = tokens[i]
  if allowed == 1 and hit and cost > 0 then
    tk = tk - cost
    redis.call('HSET', KEYS[i], 'tk', string.format('%.17g', tk), 'ts', string.format('%d', now))
    redis.call('PEXPIRE', KEYS[i], math.ceil((cap - tk) / rate / 1000) + 1)
  end
  out[#out + 1] = math.floor(tk)
  out[#out + 1] = math.ceil((cap - tk) / rate)
end
return out
