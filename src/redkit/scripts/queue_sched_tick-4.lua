-- queue_sched_tick: move a schedule from the tick it was due at to its next tick, and
-- enqueue that tick's job, at most once: only the caller that saw the schedule at that
-- tick moves it (compare and set on the next-run score), however many workers try.
-- KEYS[1] next runs (zset: name -> ms)   KEYS[2] wait   KEYS[3] inbox
-- KEYS[4] meta (hash: 'seq' counter)
-- ARGV[1] key base   ARGV[2] schedule name   ARGV[3] the tick it was due at (ms)
-- ARGV[4] its next tick (ms)   ARGV[5] '1' to enqueue the tick's job, '0' to skip it
--   (a tick older than the catch-up window, or the first computation)
-- ARGV[6] the job's id (deterministic per tick)   ARGV[7] task   ARGV[8] payload
-- ARGV[9] priority   ARGV[10] events kept (0: none)
-- Returns 1 when this call moved the schedule (and enqueued, if asked), 0 when another
-- worker had moved it (or the schedule was removed).
--!include _clock.lua
--!include _queue.lua
ingest_all(ARGV[1])  -- the plain jobs added before this one come first
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not score or tonumber(score) ~= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
if ARGV[5] == '1' then
  local jk = job_key(ARGV[1], ARGV[6])
  if redis.call('EXISTS', jk) == 0 then
    create_job(jk, ARGV[6], ARGV[7], ARGV[8], ARGV[9], 0, now_ms(), KEYS[2], nil, KEYS[4])
    wake(KEYS[3])
    emit(ARGV[1], ARGV[10], 'enqueued', ARGV[6])
  end
end
return 1
