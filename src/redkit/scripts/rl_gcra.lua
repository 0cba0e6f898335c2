-- rl_gcra: generic cell rate algorithm (a token bucket kept as one timestamp), all or none.
-- KEYS[i]  the theoretical arrival time (TAT, us) of limit i, a string
-- ARGV[1]  mode: 1 = hit, 0 = peek (never writes)      ARGV[2]  cost
-- ARGV[3i], ARGV[3i+1], ARGV[3i+2]  amount, period (microseconds), burst of limit i
-- Returns {allowed 0|1, retry_after_us (-1: never), then per limit: remaining, reset_after_us}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hit, cost = ARGV[1] == '1', tonumber(ARGV[2])
local n = #KEYS
local tats = {}
local allowed, retry = 1, 0
for i = 1, n do
  local amount, period, burst = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  local interval = period / amount
  local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or '0') or 0, now)
  tats[i] = tat
  local allow_at = tat + cost * interval - burst * interval
  if now < allow_at then
    allowed = 0
    if cost > burst then
      retry = -1
    elseif retry >= 0 and allow_at - now > retry then
      retry = math.ceil(allow_at - now)
    end
  end
end
local out = {allowed, allowed == 1 and 0 or retry}
for i = 1, n do
  local amount, period, burst = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  local interval = period / amount
  local tat = tats[i]
  if allowed == 1 and hit and cost > 0 then
    tat = tat + cost * interval
    redis.call('SET', KEYS[i], string.format('%.17g', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  end
  out[#out + 1] = math.max(0, math.floor((burst * interval - (tat - now)) / interval + 1e-9))
  out[#out + 1] = math.ceil(tat - now)
end
return out
