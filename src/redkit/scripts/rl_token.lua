-- rl_token: token bucket (capacity = burst, refilled continuously at amount per period),
-- for one or more limits checked and charged all or nothing, on the server's clock.
-- KEYS[i]  a hash of limit i: tk = tokens left, ts = time of that count (us)
-- ARGV[1]  mode: 1 = hit (charge when every limit allows), 0 = peek (never writes)
-- ARGV[2]  cost (weight of this call, >= 0)
-- ARGV[2i+1], ARGV[2i+2]  capacity (burst), refill rate (tokens per us) of limit i
-- Returns {status, retry_after_us, then per limit: remaining, reset_after_us}
--   status 0: admitted (and charged, for a hit)   1: rejected, retry after retry_after_us
--          2: rejected, the cost exceeds a limit's capacity and never fits (retry_after 0)
local t = redis.call('TIME'); local now = t[1] * 1000000 + t[2]  -- server clock, us
local hit, cost, n = ARGV[1] == '1', tonumber(ARGV[2]), #KEYS
local status, retry = 0, 0
local out = {0, 0}
for i = 1, n do
  local cap, rate = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local h = redis.call('HMGET', KEYS[i], 'tk', 'ts')
  local tk, ts = tonumber(h[1]), tonumber(h[2])
  if tk == nil or ts == nil then
    tk = cap
  elseif now > ts then
    tk = math.min(cap, tk + (now - ts) * rate)
  end
  if cost > cap then
    status = 2
  elseif tk < cost and status ~= 2 then
    status = 1
    local wait = (cost - tk) / rate
    if wait > retry then retry = wait end
  end
  out[2 * i + 1] = tk
end
local charge = hit and cost > 0 and status == 0
for i = 1, n do
  local cap, rate = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local tk = out[2 * i + 1]
  local full = (cap - tk) / rate
  if charge then
    tk = tk - cost
    full = (cap - tk) / rate
    redis.call('HSET', KEYS[i], 'tk', tk, 'ts', now)  -- numbers read back exactly
    redis.call('PEXPIREAT', KEYS[i], math.ceil((now + full) / 1000) + 1)
  end
  out[2 * i + 1] = math.floor(tk)
  out[2 * i + 2] = math.ceil(full)
end
out[1], out[2] = status, status == 1 and math.max(1, math.ceil(retry)) or 0
return out
