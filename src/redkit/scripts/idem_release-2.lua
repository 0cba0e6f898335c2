-- idem_release: give up a claim (the run failed), if the caller still owns it; wake waiters.
-- KEYS[1] the record   KEYS[2] the wake-up list that waiters block on (BLPOP)
-- ARGV[1] owner token   ARGV[2] how long unclaimed wake-up signals live, in ms
-- Returns 1 when released, 0 when the caller no longer owned the key;
-- -1 when the record holds another Redis type.
--!include _idem_wake.lua
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'hash' and kind ~= 'none' then
  return -1
end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
wake_all(KEYS[1], KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
return 1
