-- cache_touch: give an entry a new expiry, in Redis and in its header (see envelope.py).
-- KEYS[1] the entry
-- ARGV[1] the new soft and hard expiry: 16 bytes, two big-endian doubles (header bytes 5-20)
-- ARGV[2] the new ttl in milliseconds, or "0" for no expiry
-- Returns 1 when the entry existed, 0 when it did not, -3 when the key holds bytes redkit
-- did not write (see scripts.STATUS).
local v = redis.call('GET', KEYS[1])
if not v then
  return 0
end
if string.len(v) < 33 or string.byte(v, 1) ~= 193 then
  return -3
end
local touched = string.sub(v, 1, 4) .. ARGV[1] .. string.sub(v, 21)
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], touched)
else
  redis.call('SET', KEYS[1], touched, 'PX', ARGV[2])
end
return 1
