-- idem_complete: store the result of a run, if the caller still owns it; wake waiters.
-- KEYS[1] the record   KEYS[2] the wake-up list that waiters block on (BLPOP)
-- KEYS[3] the recovery points (deleted: the stored result supersedes them)
-- ARGV[1] owner token   ARGV[2] the stored result   ARGV[3] retention in ms
-- ARGV[4] how long unclaimed wake-up signals live, in ms
-- Returns 1 when stored (now, or by this owner's earlier attempt: a retry after the reply
-- was lost, a timeout after the server ran it; 'by' keeps the token that completed it), 0
-- when the caller no longer owned the key (its lease expired); -1 on another Redis type.
--!include _idem_wake.lua
--!include _idem_owner.lua
local own = owned(KEYS[1], ARGV[1])
if own == 0 and redis.call('HGET', KEYS[1], 'by') == ARGV[1] then
  return 1
end
if own ~= 1 then
  return own
end
redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[2], 'by', ARGV[1])
redis.call('HDEL', KEYS[1], 'owner')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[3])
wake_all(KEYS[1], KEYS[2], ARGV[4])
return 1
