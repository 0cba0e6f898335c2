-- idem_claim: claim an idempotency key for one run, or report who has it.
-- KEYS[1] the record (a hash: state "run"|"done", owner, fp, result, waiters)
-- ARGV[1] owner token   ARGV[2] fingerprint ('' = none)   ARGV[3] lease in ms
-- ARGV[4] 1 when the caller will wait for the result (counted as a waiter), else 0
-- Returns {1} claimed (the record now holds this owner, expiring after the lease);
-- {2, pttl_ms} another owner runs it (pttl: its lease left); {3, result} completed;
-- {4} the key was used with another fingerprint; -1 when the key holds another type.
-- A fingerprint is compared only when both the stored and the given one are non-empty.
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then
  redis.call('HSET', KEYS[1], 'state', 'run', 'owner', ARGV[1], 'fp', ARGV[2], 'waiters', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1}
end
if kind ~= 'hash' then
  return -1
end
local rec = redis.call('HMGET', KEYS[1], 'state', 'owner', 'fp', 'result')
local fp = rec[3] or ''
if fp ~= '' and ARGV[2] ~= '' and fp ~= ARGV[2] then
  return {4}
end
if rec[1] == 'done' then
  return {3, rec[4] or ''}
end
if rec[2] == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1}
end
if ARGV[4] == '1' then
  redis.call('HINCRBY', KEYS[1], 'waiters', 1)
end
return {2, redis.call('PTTL', KEYS[1])}
