-- rl_sliding: sliding window counter (the current fixed window plus the previous one,
-- weighted by how much of it still overlaps the sliding window), all limits or none.
-- KEYS[i]  a hash of limit i: w = window number, c = count in it, p = count in window w-1
-- ARGV[1]  mode: 1 = hit, 0 = peek (never writes)      ARGV[2]  cost
-- ARGV[3i], ARGV[3i+1], ARGV[3i+2]  amount, period (microseconds), burst (unused) of limit i
-- Returns {allowed 0|1, retry_after_us (-1: never), then per limit: remaining, reset_after_us}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hit, cost = ARGV[1] == '1', tonumber(ARGV[2])
local n = #KEYS
local st = {}
local allowed, retry = 1, 0
for i = 1, n do
  local amount, period = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local win = math.floor(now / period)
  local elapsed = now - win * period
  local h = redis.call('HMGET', KEYS[i], 'w', 'c', 'p')
  local w, cur, prev = tonumber(h[1]) or -1, tonumber(h[2]) or 0, tonumber(h[3]) or 0
  if w == win - 1 then prev, cur = cur, 0 elseif w ~= win then prev, cur = 0, 0 end
  local est = prev * (period - elapsed) / period + cur
  st[i] = {win, elapsed, cur, prev, est}
  if est + cost > amount then
    allowed = 0
    local wait
    if cost > amount then
      wait = -1
    elseif cur + cost <= amount and prev > 0 then
      wait = (period - elapsed) - (amount - cur - cost) * period / prev
    else
      wait = (period - elapsed) + math.max(0, period - (amount - cost) * period / cur)
    end
    if wait < 0 then retry = -1 elseif retry >= 0 and wait > retry then retry = wait end
  end
end
local out = {allowed, allowed == 1 and 0 or math.ceil(retry)}
for i = 1, n do
  local amount, period = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local win, elapsed, cur, prev, est = unpack(st[i])
  if allowed == 1 and hit and cost > 0 then
    cur, est = cur + cost, est + cost
    redis.call('HSET', KEYS[i], 'w', win, 'c', cur, 'p', prev)
    redis.call('PEXPIRE', KEYS[i], math.ceil((2 * period - elapsed) / 1000))
  end
  local reset = 0
  if cur > 0 then reset = 2 * period - elapsed elseif prev > 0 then reset = period - elapsed end
  out[#out + 1] = math.max(0, math.floor(amount - est))
  out[#out + 1] = math.ceil(reset)
end
return out
