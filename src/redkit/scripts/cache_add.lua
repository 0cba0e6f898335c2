-- cache_add: store an entry unless the key holds one other than the invalid one the caller
-- read; on one server, also only if the versions it is stamped with are the current ones.
-- KEYS[1] the entry   KEYS[2..n+1] the version keys the entry is stamped with (the
--   namespace's, then tags'), on one server; none on a cluster (other slots: the caller
--   reads them in the same batch)
-- ARGV[1] SHA-1 (hex) of the entry the caller found invalid (read before, or one it wrote
--   itself stamped with versions that had changed), or "" to store only into an empty key
-- ARGV[2] the new entry bytes   ARGV[3] its ttl in milliseconds, or "0" for no expiry
-- ARGV[4..n+3] each version the entry carries; "+<version>" also creates the key with that
--   (fresh, random) version when it is missing (as cache_set: never a remembered one)
-- Returns {stored, current, versions...}: stored is 1 when stored, else 0 (storing
-- nothing); current is the bytes the key holds when they were in the way, else false;
-- then the current value of each version key (false when missing), so the caller can
-- check the bytes' validity and stamp again without reading anything.
-- Holding the very bytes of ARGV[2] counts as stored (a retry after the reply was lost: a
-- timeout after the server ran it; the bytes carry their write time, so no one else's).
-- (An invalid entry never becomes valid again, so replacing the very bytes that were read
-- cannot overwrite a valid entry; the caller checks validity, which needs other slots.)
--!include _cache_versions.lua
local out = {0, false}
local stale = versions(1, 3, #KEYS - 1, out, 2)
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[2] and (ARGV[1] == '' or redis.sha1hex(current) ~= ARGV[1]) then
  out[2] = current
  return out
end
if stale then
  return out
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
out[1] = 1
return out
