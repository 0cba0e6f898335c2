-- cache_set: store entries stamped with versions, if those are still the current versions.
-- KEYS[1..n] the version keys the entries are stamped with (the namespace's, then tags')
-- KEYS[n+1..] the entries
-- ARGV[1] n   ARGV[2..n+1] each version the entries carry; "+<version>" also creates the
--   key with that (fresh, random) version when it is missing
-- then, per entry: its bytes and its ttl in milliseconds ("0" for no expiry)
-- Returns 1 when stored; else, storing nothing, the current versions (false for a missing
-- key) so the caller can stamp the entries again. A missing key is created only from a
-- "+" version, never from one the caller remembers: an evicted version key must not bring
-- back the old entries stamped with it.
--!include _cache_versions.lua
local n = tonumber(ARGV[1])
local current = {}
local stale = versions(0, 1, n, current, 0)
if stale then
  return current
end
local arg = n + 2
for k = n + 1, #KEYS do
  if ARGV[arg + 1] == '0' then
    redis.call('SET', KEYS[k], ARGV[arg])
  else
    redis.call('SET', KEYS[k], ARGV[arg], 'PX', ARGV[arg + 1])
  end
  arg = arg + 2
end
return 1
