-- rl_fixed: fixed windows, each starting at its first charged hit and ending when its
-- counter expires, for one or more limits checked and charged all or nothing.
-- KEYS[i]  the counter of limit i (a string; its TTL is the rest of the window)
-- ARGV[1]  mode: 1 = hit (charge when every limit allows), 0 = peek (never writes)
-- ARGV[2]  cost (weight of this call, >= 0)
-- ARGV[2i+1], ARGV[2i+2]  amount, period (ms) of limit i
-- Returns big-endian signed 64-bit integers in one string (as struct.pack '>i8...'):
--   status, retry_after_us, then per limit: remaining, reset_after_us
--   status 0: admitted (and charged, for a hit)   1: rejected, retry after retry_after_us
--          2: rejected, the cost exceeds a limit's amount and never fits (retry_after 0)
-- A hit is charged first (INCRBY: one call less than reading, then writing) and undone in
-- the same script when a limit rejects it, so a rejected hit is never charged.
local call, num = redis.call, tonumber  -- locals: cheaper than global lookups
local hit, cost, n = ARGV[1] == '1', num(ARGV[2]), #KEYS
local charge = hit and cost > 0
local status, retry = 0, 0
local out = {0, 0, 0, 0}  -- sized for one limit, the common policy
for i = 1, n do
  local j, key = 2 * i + 1, KEYS[i]
  local amount, ms = num(ARGV[j]), num(ARGV[j + 1])
  local c, ttl
  if charge and cost <= amount then
    c = call('INCRBY', key, cost)
    if c == cost then
      call('PEXPIRE', key, ms)
      ttl = ms
    else
      ttl = call('PTTL', key)
      if ttl < 0 then  -- a counter without an expiry (not one redkit wrote): a new window
        call('SET', key, cost, 'PX', ms)
        c, ttl = cost, ms
      end
    end
  else
    c, ttl = num(call('GET', key)) or 0, ms
    if c > 0 then ttl = call('PTTL', key) end
    if ttl < 0 then c, ttl = 0, ms end
    c = c + cost  -- what the count would be
  end
  if cost > amount then
    status = 2
  elseif c > amount and status ~= 2 then
    status = 1
    if ttl > retry then retry = ttl end
  end
  out[j], out[j + 1] = amount - c, c > 0 and ttl * 1000 or 0
end
if status ~= 0 or not hit then  -- not charged: undo, and report the counts as they stand
  for i = 1, n do
    local j = 2 * i + 1
    local amount = num(ARGV[j])
    if charge and cost <= amount and call('DECRBY', KEYS[i], cost) <= 0 then
      call('DEL', KEYS[i])
    end
    local left = out[j] + cost
    if left >= amount then out[j + 1] = 0 end
    out[j] = left > 0 and left or 0
  end
end
out[1] = status
if status == 1 then out[2] = math.max(1, retry * 1000) end
-- one string, cheap to reply (an array costs the server about a microsecond more)
local layout = n == 1 and '>i8i8i8i8' or '>' .. string.rep('i8', #out)
return struct.pack(layout, unpack(out))
