-- rl_gcra: generic cell rate algorithm (a token bucket kept as one timestamp per limit),
-- for one or more limits checked and charged all or nothing, on the server's clock.
-- KEYS[i]  the theoretical arrival time (TAT, us since the epoch) of limit i, a string
-- ARGV[1]  mode: 1 = hit (charge when every limit allows), 0 = peek (never writes)
-- ARGV[2]  cost (weight of this call, >= 0)
-- ARGV[2i+1], ARGV[2i+2]  emission interval (us per unit: period / amount), burst of limit i
-- Returns big-endian signed 64-bit integers in one string (as struct.pack '>i8...'):
--   status, retry_after_us, then per limit: lead_ns, how far its TAT is ahead of now
--   (after the hit, when charged), in nanoseconds; the caller derives what remains,
--   (burst * interval - lead) / interval, and when the limit is whole again (the lead)
--   status 0: admitted (and charged, for a hit)   1: rejected, retry after retry_after_us
--          2: rejected, the cost exceeds a limit's burst and never fits (retry_after 0)
--!include _clock.lua
local now = now_us()
local call, num = redis.call, tonumber  -- locals: cheaper than global lookups
local cost, n = num(ARGV[2]), #KEYS
local status, retry = 0, 0
local out = {0, 0, 0}  -- sized for one limit, the common policy
for i = 1, n do
  local interval, burst = num(ARGV[2 * i + 1]), num(ARGV[2 * i + 2])
  local ahead = (num(call('GET', KEYS[i])) or now) - now  -- TAT - now
  if ahead < 0 then ahead = 0 end
  if cost > burst then
    status = 2
  elseif status ~= 2 then
    local wait = ahead - (burst - cost) * interval  -- > 0: too early by this much
    if wait > 0 then
      status = 1
      if wait > retry then retry = wait end
    end
  end
  out[i + 2] = ahead
end
local charge = status == 0 and cost > 0 and ARGV[1] == '1'
for i = 1, n do
  local ahead = out[i + 2]
  if charge then
    local tat = now + ahead + cost * num(ARGV[2 * i + 1])
    call('SET', KEYS[i], tat, 'PXAT', math.ceil(tat / 1000) + 1)  -- numbers read back exactly
    ahead = tat - now
  end
  out[i + 2] = ahead * 1000
end
out[1] = status
if status == 1 then out[2] = retry + 1 end
-- one string, cheap to reply (an array costs the server about a microsecond more)
local layout = n == 1 and '>i8i8i8' or '>' .. string.rep('i8', #out)
return struct.pack(layout, unpack(out))
