-- idem_claim: claim an idempotency key for one run, or report who has it.
-- KEYS[1] the record (a hash: state "run"|"done", owner, fp, result, waiters)
-- KEYS[2] the recovery points of earlier runs (a hash: fp, and "s:<step>" per step)
-- ARGV[1] owner token   ARGV[2] fingerprint ('' = none)   ARGV[3] lease in ms
-- ARGV[4] 1 when the caller will wait for the result (counted as a waiter), else 0
-- Returns {1, step, value, ...} claimed (the record now holds this owner, expiring after
-- the lease; the steps an earlier run committed follow); {2, pttl_ms} another owner runs
-- it (pttl: its lease left); {3, result} completed; -6 when the key was used with another
-- fingerprint; -1 when a key holds another type.
-- A fingerprint is compared only when both the stored and the given one are non-empty.
local function steps()
  local reply = {1}
  local all = redis.call('HGETALL', KEYS[2])
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 's:' then
      reply[#reply + 1] = string.sub(all[i], 3)
      reply[#reply + 1] = all[i + 1]
    end
  end
  return reply
end
local kind = redis.call('TYPE', KEYS[1])['ok']
local skind = redis.call('TYPE', KEYS[2])['ok']
if (kind ~= 'hash' and kind ~= 'none') or (skind ~= 'hash' and skind ~= 'none') then
  return -1
end
if kind == 'none' then
  if skind == 'hash' then
    local sfp = redis.call('HGET', KEYS[2], 'fp') or ''
    if sfp ~= '' and ARGV[2] ~= '' and sfp ~= ARGV[2] then
      return -6
    end
  end
  redis.call('HSET', KEYS[1], 'state', 'run', 'owner', ARGV[1], 'fp', ARGV[2], 'waiters', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  if skind == 'none' then
    return {1}
  end
  return steps()
end
local rec = redis.call('HMGET', KEYS[1], 'state', 'owner', 'fp', 'result')
local fp = rec[3] or ''
if fp ~= '' and ARGV[2] ~= '' and fp ~= ARGV[2] then
  return -6
end
if rec[1] == 'done' then
  return {3, rec[4] or ''}
end
if rec[2] == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return steps()
end
if ARGV[4] == '1' then
  redis.call('HINCRBY', KEYS[1], 'waiters', 1)
end
return {2, redis.call('PTTL', KEYS[1])}
