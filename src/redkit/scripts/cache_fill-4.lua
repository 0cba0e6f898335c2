-- cache_fill: store a loaded entry, release the fill lock and wake every waiter.
-- KEYS[1] the entry   KEYS[2] the fill lock   KEYS[3] the waiter count   KEYS[4] the wake list
-- ARGV[1] owner token   ARGV[2] the entry bytes   ARGV[3] entry ttl in milliseconds
-- ARGV[4] how long unclaimed wake signals live, in ms
-- ARGV[5] "1" to store with the ttl, "2" to store without expiry, "0" to only release
-- The entry is stored when the caller still holds the lock or nobody does (its lock expired
-- during a slow load); never over the head of a newer loader, whose value will be fresher.
-- Returns 1 when the caller held the lock (released, waiters woken), 0 otherwise.
local holder = redis.call('GET', KEYS[2])
if ARGV[5] ~= '0' and (not holder or holder == ARGV[1]) then
  if ARGV[5] == '1' then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  else
    redis.call('SET', KEYS[1], ARGV[2])
  end
end
if holder ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
local waiting = tonumber(redis.call('GET', KEYS[3]) or '0')
redis.call('DEL', KEYS[3])
if waiting > 0 then
  if waiting > 1000 then waiting = 1000 end
  local signals = {}
  for i = 1, waiting do signals[i] = '1' end
  redis.call('RPUSH', KEYS[4], unpack(signals))
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
end
return 1
