-- queue_cancel: cancel a job. A job that has not started (waiting or delayed) is cancelled
-- at once; for a running one, cancellation is requested: field 'cx' is set and the job's
-- id is pushed on its worker's cancel list (base..'x:'..worker), which that worker
-- follows. The worker's report then ends the job as cancelled (unless the handler
-- returned a result); a dead worker's job with 'cx' set is cancelled instead of retried.
-- KEYS[1] the job's hash   KEYS[2] wait   KEYS[3] delayed
-- ARGV[1] key base   ARGV[2] the job's id   ARGV[3] ms the cancelled job is kept
-- ARGV[4] ms a worker's cancel list is kept (its lease)   ARGV[5] events kept (0: none)
-- A flow's parent waiting for its children ('blocked', in base..'blocked') is cancelled at
-- once too.
-- Returns 1 when cancelled, 2 when cancellation of the running job was requested, 0 when
-- it is finished or unknown, LOOK_AGAIN (-1) when it is not found yet and the inbox holds
-- more jobs to take in (see _queue_core.lua).
--!include _clock.lua
--!include _queue.lua
local st, wk = unpack(redis.call('HMGET', KEYS[1], 'st', 'wk'))
if not st then
  local more = ingest_all(ARGV[1])  -- a plain job may wait in the inbox
  st = redis.call('HGET', KEYS[1], 'st')
  if not st and more then
    return LOOK_AGAIN
  end
end
if st == 'active' then
  redis.call('HSET', KEYS[1], 'cx', 1)
  local list = ARGV[1] .. 'x:' .. wk
  redis.call('RPUSH', list, ARGV[2])
  redis.call('PEXPIRE', list, ARGV[4])
  return 2
end
if st ~= 'waiting' and st ~= 'delayed' and st ~= 'blocked' then
  return 0
end
unready(ARGV[1], KEYS[2], ARGV[2], KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', ARGV[1] .. 'blocked', ARGV[2])
end_cancelled(ARGV[1], ARGV[2], KEYS[1], now_ms(), ARGV[3], ARGV[5])
emit(ARGV[1], ARGV[5], 'cancelled', ARGV[2])
return 1
