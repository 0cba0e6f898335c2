-- idem_release: give up a claim (the run failed), if the caller still owns it; wake waiters.
-- KEYS[1] the record   KEYS[2] the wake-up list that waiters block on (BLPOP)
-- ARGV[1] owner token   ARGV[2] how long unclaimed wake-up signals live, in ms
-- Returns 1 when released, 0 when the caller no longer owned the key;
-- -1 when the record holds another Redis type.
--!include _idem_wake.lua
--!include _idem_owner.lua
local own = owned(KEYS[1], ARGV[1])
if own ~= 1 then
  return own
end
wake_all(KEYS[1], KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
return 1
