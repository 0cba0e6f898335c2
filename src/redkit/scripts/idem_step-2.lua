-- idem_step: commit a recovery point of a running call, if the caller still owns it.
-- KEYS[1] the record   KEYS[2] the recovery points (a hash: fp, and "s:<step>" per step)
-- ARGV[1] owner token   ARGV[2] step name   ARGV[3] the step's stored result
-- ARGV[4] retention in ms   ARGV[5] the call's fingerprint ('' = none)
-- Returns 1 when committed; -7 when the caller no longer owns the key (its lease
-- expired); -1 when a key holds another Redis type.
--!include _idem_owner.lua
local own = owned(KEYS[1], ARGV[1])
if own == 0 then
  return -7
end
if own ~= 1 then
  return own
end
redis.call('HSET', KEYS[2], 'fp', ARGV[5], 's:' .. ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
