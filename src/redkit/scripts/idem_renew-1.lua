-- idem_renew: extend the lease of a running claim, if the caller still owns it.
-- KEYS[1] the record   ARGV[1] owner token   ARGV[2] lease in ms
-- Returns 1 when extended, 0 when the caller no longer owns it; -1 on another type.
--!include _idem_owner.lua
local own = owned(KEYS[1], ARGV[1])
if own ~= 1 then
  return own
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
