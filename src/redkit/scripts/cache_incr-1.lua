-- cache_incr: add to an integer cache entry in place, keeping its ttl and header.
-- KEYS[1] the entry
-- ARGV[1] the amount (an integer)   ARGV[2] the namespace version the entry must carry
-- (8 bytes, big-endian, as in the entry header; see redkit/cache/envelope.py)
-- Returns {1, new_value}, {0} when there is no valid entry, {-1} when it is not an integer
-- or when the value or the result is beyond +-(2^53 - 1): Lua numbers are doubles, which
-- hold no larger integer exactly, so such an increment is refused rather than rounded.
local v = redis.call('GET', KEYS[1])
if not v or string.byte(v, 1) ~= 193 or string.sub(v, 25, 32) ~= ARGV[2] then
  return {0}
end
if math.floor(string.byte(v, 2) / 2) % 2 == 0 then
  return {-1}
end
local head = string.byte(v, 3) * 256 + string.byte(v, 4)
local current = tonumber(string.sub(v, head + 1))
local value = current + tonumber(ARGV[1])
if math.abs(current) > 9007199254740991 or math.abs(value) > 9007199254740991 then
  return {-1}
end
local text = string.format('%.0f', value)
redis.call('SET', KEYS[1], string.sub(v, 1, head) .. text, 'KEEPTTL')
return {1, value}
