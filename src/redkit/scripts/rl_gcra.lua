-- rl_gcra: generic cell rate algorithm (a token bucket kept as one timestamp per limit),
-- for one or more limits checked and charged all or nothing, on the server's clock.
-- KEYS[i]  the theoretical arrival time (TAT, us since the epoch) of limit i, a string
-- ARGV[1]  mode: 1 = hit (charge when every limit allows), 0 = peek (never writes)
-- ARGV[2]  cost (weight of this call, >= 0)
-- ARGV[2i+1], ARGV[2i+2]  emission interval (us per unit: period / amount), burst of limit i
-- Returns {status, retry_after_us, then per limit: remaining, reset_after_us}
--   status 0: admitted (and charged, for a hit)   1: rejected, retry after retry_after_us
--          2: rejected, the cost exceeds a limit's burst and never fits (retry_after 0)
local t = redis.call('TIME'); local now = t[1] * 1000000 + t[2]  -- server clock, us
local hit, cost, n = ARGV[1] == '1', tonumber(ARGV[2]), #KEYS
local status, retry = 0, 0
local out = {0, 0}
for i = 1, n do
  local interval, burst = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local wait = tat - now - (burst - cost) * interval  -- > 0: too early by this much
  if cost > burst then
    status = 2
  elseif wait > 0 and status ~= 2 then
    status = 1
    if wait > retry then retry = wait end
  end
  out[2 * i + 1] = tat
end
local charge = hit and cost > 0 and status == 0
for i = 1, n do
  local interval, burst = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local tat = out[2 * i + 1]
  if charge then
    tat = tat + cost * interval
    redis.call('SET', KEYS[i], tat, 'PXAT', math.ceil(tat / 1000) + 1)  -- numbers read back exactly
  end
  out[2 * i + 1] = math.max(0, math.floor((burst * interval - (tat - now)) / interval + 1e-9))
  out[2 * i + 2] = math.ceil(tat - now)
end
out[1], out[2] = status, status == 1 and math.max(1, math.ceil(retry)) or 0
return out
