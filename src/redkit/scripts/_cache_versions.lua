-- versions(k0, a0, n, out, o0): checks the version keys KEYS[k0+1..k0+n] against the
-- versions an entry is stamped with, ARGV[a0+1..a0+n]. A "+<version>" stamp also creates
-- its key with that (fresh, random) version when the key is missing; a missing key is
-- never made from a remembered version, so an evicted version key cannot bring back the
-- old entries stamped with it. Each key's current value (false when missing) goes to
-- out[o0+i]. Returns true when a stamp is not current (stale).
local function versions(k0, a0, n, out, o0)
  local stale = false
  for i = 1, n do
    local want = ARGV[a0 + i]
    local have = redis.call('GET', KEYS[k0 + i])
    if not have and string.sub(want, 1, 1) == '+' then
      have = string.sub(want, 2)
      redis.call('SET', KEYS[k0 + i], have)
    end
    if have ~= want and '+' .. tostring(have) ~= want then
      stale = true
    end
    out[o0 + i] = have
  end
  return stale
end
