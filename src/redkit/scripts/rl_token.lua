-- rl_token: token bucket (capacity = burst, refilled continuously at amount per period),
-- for one or more limits checked and charged all or nothing, on the server's clock.
-- KEYS[i]  a hash of limit i: tk = tokens left, ts = time of that count (us)
-- ARGV[1]  mode: 1 = hit (charge when every limit allows), 0 = peek (never writes)
-- ARGV[2]  cost (weight of this call, >= 0)
-- ARGV[2i+1], ARGV[2i+2]  capacity (burst), refill rate (tokens per us) of limit i
-- Returns big-endian signed 64-bit integers in one string (as struct.pack '>i8...'):
--   status, retry_after_us, then per limit: remaining, reset_after_us
--   status 0: admitted (and charged, for a hit)   1: rejected, retry after retry_after_us
--          2: rejected, the cost exceeds a limit's capacity and never fits (retry_after 0)
--!include _clock.lua
local now = now_us()
local call, num = redis.call, tonumber  -- locals: cheaper than global lookups
local cost, n = num(ARGV[2]), #KEYS
local status, retry = 0, 0
local out = {0, 0, 0, 0}  -- sized for one limit, the common policy
for i = 1, n do
  local j = 2 * i + 1
  local cap, rate = num(ARGV[j]), num(ARGV[j + 1])
  local h = call('HMGET', KEYS[i], 'tk', 'ts')
  local tk, ts = num(h[1]), num(h[2])
  if tk == nil or ts == nil then
    tk = cap
  elseif now > ts then
    tk = tk + (now - ts) * rate
    if tk > cap then tk = cap end
  end
  if cost > cap then
    status = 2
  elseif tk < cost and status ~= 2 then
    status = 1
    local wait = (cost - tk) / rate
    if wait > retry then retry = wait end
  end
  out[j] = tk
end
local charge = status == 0 and cost > 0 and ARGV[1] == '1'
for i = 1, n do
  local j = 2 * i + 1
  local cap, rate = num(ARGV[j]), num(ARGV[j + 1])
  local tk = out[j]
  if charge then
    tk = tk - cost
    call('HSET', KEYS[i], 'tk', tk, 'ts', now)  -- numbers read back exactly
    call('PEXPIREAT', KEYS[i], math.ceil((now + (cap - tk) / rate) / 1000) + 1)
  end
  -- packing truncates: floor for the count, within a microsecond for the time
  out[j], out[j + 1] = tk, (cap - tk) / rate + 0.999
end
out[1] = status
if status == 1 then out[2] = retry + 1 end
-- one string, cheap to reply (an array costs the server about a microsecond more)
local layout = n == 1 and '>i8i8i8i8' or '>' .. string.rep('i8', #out)
return struct.pack(layout, unpack(out))
