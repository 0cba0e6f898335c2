-- rl_log: sliding log, exact: a sorted set of hit times per limit, all limits or none.
-- KEYS[i]  a sorted set of limit i: one member per unit of cost, scored by its time (us)
-- ARGV[1]  mode: 1 = hit, 0 = peek (never writes)      ARGV[2]  cost
-- ARGV[3i], ARGV[3i+1], ARGV[3i+2]  amount, period (microseconds), burst (unused) of limit i
-- Returns {allowed 0|1, retry_after_us (-1: never), then per limit: remaining, reset_after_us}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hit, cost = ARGV[1] == '1', tonumber(ARGV[2])
local n = #KEYS
local counts = {}
local allowed, retry = 1, 0
for i = 1, n do
  local amount, period = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local horizon = now - period
  local c = redis.call('ZCOUNT', KEYS[i], string.format('(%d', horizon), '+inf')
  counts[i] = c
  if c + cost > amount then
    allowed = 0
    if cost > amount then
      retry = -1
    elseif retry >= 0 then
      -- the (c + cost - amount)-th oldest hit inside the window must leave it first
      local stale = redis.call('ZCARD', KEYS[i]) - c
      local idx = stale + c + cost - amount - 1
      local e = redis.call('ZRANGE', KEYS[i], idx, idx, 'WITHSCORES')
      local wait = tonumber(e[2]) + period - now
      if wait > retry then retry = wait end
    end
  end
end
local out = {allowed, allowed == 1 and 0 or retry}
for i = 1, n do
  local amount, period = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local c = counts[i]
  if allowed == 1 and hit and cost > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', string.format('%d', now - period))
    -- members are unique: same `now` means same trim, so the count only grows
    local members = {}
    for j = 1, cost do
      members[#members + 1] = string.format('%d', now)
      members[#members + 1] = string.format('%d-%d', now, c + j)
      if #members >= 1000 then
        redis.call('ZADD', KEYS[i], unpack(members))
        members = {}
      end
    end
    if #members > 0 then redis.call('ZADD', KEYS[i], unpack(members)) end
    redis.call('PEXPIRE', KEYS[i], math.ceil(period / 1000) + 1)
    c = c + cost
  end
  local reset = 0
  if c > 0 then
    local newest = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
    reset = tonumber(newest[2]) + period - now
  end
  out[#out + 1] = math.max(0, amount - c)
  out[#out + 1] = reset
end
return out
