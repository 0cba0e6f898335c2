-- rl_fixed: fixed windows, each starting at its first hit and ending when its key expires,
-- for one or more limits checked (and charged) all or nothing.
-- KEYS[i]  the counter of limit i (a string; its TTL is the rest of the window)
-- ARGV[1]  mode: 1 = hit (charge when every limit allows), 0 = peek (never writes)
-- ARGV[2]  cost (weight of this call)
-- ARGV[3i], ARGV[3i+1], ARGV[3i+2]  amount, period (microseconds), burst (unused) of limit i
-- Returns {allowed 0|1, retry_after_us (-1: the cost never fits), then per limit:
--          remaining, reset_after_us}
local hit, cost = ARGV[1] == '1', tonumber(ARGV[2])
local n = #KEYS
local used, ttl = {}, {}
local allowed, retry = 1, 0
for i = 1, n do
  local amount, period_ms = tonumber(ARGV[3 * i]), math.ceil(tonumber(ARGV[3 * i + 1]) / 1000)
  local c, t = tonumber(redis.call('GET', KEYS[i]) or '0'), -2
  if c > 0 then t = redis.call('PTTL', KEYS[i]) end
  if t < 0 then c, t = 0, period_ms end
  used[i], ttl[i] = c, t
  if c + cost > amount then
    allowed = 0
    if cost > amount then retry = -1 elseif retry >= 0 and t * 1000 > retry then retry = t * 1000 end
  end
end
local out = {allowed, allowed == 1 and 0 or retry}
for i = 1, n do
  local amount, period_ms = tonumber(ARGV[3 * i]), math.ceil(tonumber(ARGV[3 * i + 1]) / 1000)
  local c = used[i]
  if allowed == 1 and hit and cost > 0 then
    if c == 0 then
      redis.call('SET', KEYS[i], cost, 'PX', period_ms)
    else
      redis.call('INCRBY', KEYS[i], cost)
      if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], period_ms) end
    end
    c = c + cost
  end
  out[#out + 1] = math.max(0, amount - c)
  out[#out + 1] = c > 0 and ttl[i] * 1000 or 0
end
return out
