-- cache_add: store an entry unless the key holds one other than the invalid one the caller read.
-- KEYS[1] the entry
-- ARGV[1] SHA-1 (hex) of the entry the caller found invalid (read before, or one it wrote
--   itself stamped with versions that had changed), or "" to store only into an empty key
-- ARGV[2] the new entry bytes   ARGV[3] its ttl in milliseconds, or "0" for no expiry
-- Returns {1, false} when stored; {0, current} when the key holds something else, with
-- those bytes, so the caller can check their validity without reading them again.
-- Holding the very bytes of ARGV[2] counts as stored (a retry after the reply was lost: a
-- timeout after the server ran it; the bytes carry their write time, so no one else's).
-- (An invalid entry never becomes valid again, so replacing the very bytes that were read
-- cannot overwrite a valid entry; the caller checks validity, which needs other slots.)
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[2] and (ARGV[1] == '' or redis.sha1hex(current) ~= ARGV[1]) then
  return {0, current}
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return {1, false}
