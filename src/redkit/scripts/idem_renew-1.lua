-- idem_renew: extend the lease of a running claim, if the caller still owns it.
-- KEYS[1] the record   ARGV[1] owner token   ARGV[2] lease in ms
-- Returns 1 when extended, 0 when the caller no longer owns it; -1 on another type.
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'hash' and kind ~= 'none' then
  return -1
end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
