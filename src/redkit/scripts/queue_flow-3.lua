-- queue_flow: add a flow: a parent job that waits ('blocked', in base..'blocked') until its
-- children have finished, and its children, ready now. See _queue.lua child_ended.
-- KEYS[1] wait   KEYS[2] inbox   KEYS[3] meta (hash: 'seq' counter)
-- ARGV[1] key base   ARGV[2] events kept (0: none)   ARGV[3] failure policy ('fail',
--   'ignore', 'continue')
-- ARGV[4..7] the parent: id, task, payload, priority
-- ARGV[8..] four per child: id, task, payload, priority
-- Returns 1 when added (or added by this call before), 0 when a job with one of these ids
-- exists (nothing is added).
--!include _clock.lua
--!include _queue.lua
local base = ARGV[1]
ingest_all(base)  -- the plain jobs added before these come first
local now = now_ms()
-- this very call run again after its reply was lost (a client's retry): its children,
-- whose ids are new random ones, exist and name its parent
if #ARGV >= 8 and redis.call('HGET', job_key(base, ARGV[8]), 'par') == ARGV[4] then
  return 1
end
for i = 4, #ARGV, 4 do
  if redis.call('EXISTS', job_key(base, ARGV[i])) == 1 then
    return 0
  end
end
local pk = job_key(base, ARGV[4])
local kids = (#ARGV - 7) / 4
local sc = create_job(pk, ARGV[4], ARGV[5], ARGV[6], ARGV[7], 0, now, nil, nil, KEYS[3])
redis.call('HSET', pk, 'st', 'blocked', 'kids', kids, 'fp', ARGV[3])
emit(base, ARGV[2], 'enqueued', ARGV[4])
for i = 8, #ARGV, 4 do
  local jk = job_key(base, ARGV[i])
  create_job(jk, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], 0, now, KEYS[1], nil, KEYS[3])
  redis.call('HSET', jk, 'par', ARGV[4])
  emit(base, ARGV[2], 'enqueued', ARGV[i])
end
if kids == 0 then
  redis.call('HSET', pk, 'st', 'waiting')
  ready(base, KEYS[1], ARGV[4], pk)
else
  redis.call('ZADD', base .. 'blocked', sc, ARGV[4])
end
wake(KEYS[2])
return 1
