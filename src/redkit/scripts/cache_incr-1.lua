-- cache_incr: add to an integer cache entry in place, keeping its ttl and header.
-- KEYS[1] the entry
-- ARGV[1] the amount (an integer)
-- ARGV[2] the entry's version stamp as the caller read and checked it: header bytes 25 to
--         the end of the tag list (namespace version, tag count, tags; see envelope.py)
-- Returns {1, new_value} when added; {0, 0} when the key holds no entry, or one with
-- another stamp (rewritten since the caller checked it); {-2, 0} when the entry is not an
-- integer; {-3, 0} when the key holds bytes redkit did not write; {-4, 0} when the value
-- or the result is beyond +-(2^53 - 1): Lua numbers are doubles, which hold no larger
-- integer exactly, so such an increment is refused rather than rounded (see
-- scripts.STATUS for the codes).
local v = redis.call('GET', KEYS[1])
if not v then
  return {0, 0}
end
if string.len(v) < 33 or string.byte(v, 1) ~= 193 then
  return {-3, 0}
end
local head = string.byte(v, 3) * 256 + string.byte(v, 4)
if head < 33 or head > string.len(v) then
  return {-3, 0}
end
if string.sub(v, 25, head) ~= ARGV[2] then
  return {0, 0}
end
if math.floor(string.byte(v, 2) / 2) % 2 == 0 then
  return {-2, 0}
end
local text = string.sub(v, head + 1)
if not string.match(text, '^%-?%d+$') then
  return {-2, 0}
end
local current = tonumber(text)
local value = current + tonumber(ARGV[1])
if math.abs(current) > 9007199254740991 or math.abs(value) > 9007199254740991 then
  return {-4, 0}
end
redis.call('SET', KEYS[1], string.sub(v, 1, head) .. string.format('%.0f', value), 'KEEPTTL')
return {1, value}
