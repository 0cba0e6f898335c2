-- rl_sliding: sliding window counter (the current fixed window plus the previous one,
-- weighted by how much of it still overlaps the sliding window), for one or more limits
-- checked and charged all or nothing, on the server's clock. Windows align to the epoch.
-- KEYS[i]  a hash of limit i: w = window number, c = count in it, p = count in window w-1
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
local cost, n = num(ARGV[2]), #KEYS
local status, retry = 0, 0
local out = {0, 0, 0, 0}  -- sized for one limit, the common policy
local st = {}
for i = 1, n do
  local j = 2 * i + 1
  local amount, period = num(ARGV[j]), num(ARGV[j + 1])
  local win = math.floor(now / period)
  local left = (win + 1) * period - now  -- of the current window
  local h = call('HMGET', KEYS[i], 'w', 'c', 'p')
  local w, cur, prev = num(h[1]) or -1, num(h[2]) or 0, num(h[3]) or 0
  if w == win - 1 then prev, cur = cur, 0 elseif w ~= win then prev, cur = 0, 0 end
  local est = prev * left / period + cur
  if cost > amount then
    status = 2
  elseif est + cost > amount and status ~= 2 then
    status = 1
    local wait
    if cur + cost <= amount then  -- prev > 0: wait until its weight has shrunk enough
      wait = left - (amount - cur - cost) * period / prev
    else  -- cur >= 1: wait into the next window until this one's weight has shrunk enough
      wait = left + math.max(0, period - (amount - cost) * period / cur)
    end
    if wait > retry then retry = wait end
  end
  st[i] = {win, left, cur, prev, est}
end
local charge = status == 0 and cost > 0 and ARGV[1] == '1'
for i = 1, n do
  local j = 2 * i + 1
  local amount, period = num(ARGV[j]), num(ARGV[j + 1])
  local win, left, cur, prev, est = unpack(st[i])
  if charge then
    cur, est = cur + cost, est + cost
    call('HSET', KEYS[i], 'w', win, 'c', cur, 'p', prev)
    call('PEXPIREAT', KEYS[i], math.ceil((win + 2) * period / 1000))  -- the next window's end
  end
  local reset = 0
  if cur > 0 then reset = left + period + 0.999 elseif prev > 0 then reset = left + 0.999 end
  -- packing truncates: floor for the count, within a microsecond for the time
  out[j], out[j + 1] = amount > est and amount - est or 0, reset
end
out[1] = status
if status == 1 then out[2] = retry + 1 end
-- one string, cheap to reply (an array costs the server about a microsecond more)
local layout = n == 1 and '>i8i8i8i8' or '>' .. string.rep('i8', #out)
return struct.pack(layout, unpack(out))
