-- rl_log: sliding log, exact: a sorted set of hit times per limit, for one or more limits
-- checked and charged all or nothing, on the server's clock.
-- KEYS[i]  a sorted set of limit i: one member per unit of cost, scored by its time (us)
-- ARGV[1]  mode: 1 = hit (charge when every limit allows), 0 = peek (never writes)
-- ARGV[2]  cost (weight of this call, >= 0)
-- ARGV[2i+1], ARGV[2i+2]  amount, period (us) of limit i
-- Returns big-endian signed 64-bit integers in one string (as struct.pack '>i8...'):
--   status, retry_after_us, then per limit: remaining, reset_after_us
--   status 0: admitted (and charged, for a hit)   1: rejected, retry after retry_after_us
--          2: rejected, the cost exceeds a limit's amount and never fits (retry_after 0)
--!include _clock.lua
local now = now_us()
local call, num = redis.call, tonumber  -- locals: cheaper than global lookups
local hit, cost, n = ARGV[1] == '1', num(ARGV[2]), #KEYS
local status, retry = 0, 0
local out = {0, 0, 0, 0}  -- sized for one limit, the common policy
for i = 1, n do
  local j, key = 2 * i + 1, KEYS[i]
  local amount, period = num(ARGV[j]), num(ARGV[j + 1])
  local c, stale
  if hit then  -- a hit trims the expired entries (a peek never writes: it counts past them)
    call('ZREMRANGEBYSCORE', key, '-inf', now - period)
    c, stale = call('ZCARD', key), 0
  else
    c = call('ZCOUNT', key, string.format('(%d', now - period), '+inf')
    stale = call('ZCARD', key) - c
  end
  if cost > amount then
    status = 2
  elseif c + cost > amount and status ~= 2 then
    status = 1
    -- the (c + cost - amount)-th oldest entry inside the window must leave it first
    local idx = stale + c + cost - amount - 1
    local e = call('ZRANGE', key, idx, idx, 'WITHSCORES')
    local wait = num(e[2]) + period - now
    if wait > retry then retry = wait end
  end
  out[j] = c
end
local charge = hit and cost > 0 and status == 0
for i = 1, n do
  local j, key = 2 * i + 1, KEYS[i]
  local amount, period = num(ARGV[j]), num(ARGV[j + 1])
  local c, reset = out[j], 0
  if charge then
    -- members are unique: the same `now` means the same trim, so the count only grows
    local ts = string.format('%d', now)
    if cost == 1 then
      call('ZADD', key, ts, ts .. '-' .. (c + 1))
    else
      local members = {}
      for k = 1, cost do
        members[#members + 1] = ts
        members[#members + 1] = ts .. '-' .. (c + k)
        if #members >= 1000 then
          call('ZADD', key, unpack(members))
          members = {}
        end
      end
      if #members > 0 then call('ZADD', key, unpack(members)) end
    end
    call('PEXPIREAT', key, math.ceil((now + period) / 1000) + 1)
    c, reset = c + cost, period  -- the newest entry is now
  elseif c > 0 then
    local newest = call('ZRANGE', key, -1, -1, 'WITHSCORES')
    reset = num(newest[2]) + period - now
  end
  out[j], out[j + 1] = amount > c and amount - c or 0, reset
end
out[1] = status
if status == 1 then out[2] = math.max(1, retry) end
-- one string, cheap to reply (an array costs the server about a microsecond more)
local layout = n == 1 and '>i8i8i8i8' or '>' .. string.rep('i8', #out)
return struct.pack(layout, unpack(out))
