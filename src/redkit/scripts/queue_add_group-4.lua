-- queue_add_group: add jobs of one group (a tenant, a user): they wait in the group's own
-- zset and claims rotate between groups (see _queue.lua), skipping ids that exist.
-- KEYS[1] delayed (zset: id -> due ms)   KEYS[2] inbox   KEYS[3] meta ('seq' counter)
-- KEYS[4] the ring of groups with waiting jobs (list; base..'groups')
-- ARGV[1] the queue's key base   ARGV[2] events kept (0: none)   ARGV[3] the group
-- ARGV[4..] five per job: id, task, payload, priority, delay in ms
-- Returns how many jobs were added (a job whose id exists is skipped).
--!include _clock.lua
--!include _queue.lua
local base, group = ARGV[1], ARGV[3]
ingest_all(base)  -- the plain jobs added before these come first
local now = now_ms()
local added = 0
for i = 4, #ARGV, 5 do
  local id = ARGV[i]
  local jk = job_key(base, id)
  if redis.call('EXISTS', jk) == 0 then  -- a job whose id exists is skipped
    create_job(jk, id, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], now, nil, KEYS[1],
      KEYS[3])
    redis.call('HSET', jk, 'g', group)
    if tonumber(ARGV[i + 4]) <= 0 then
      ready(base, nil, id, jk)
    end
    emit(base, ARGV[2], 'enqueued', id)
    added = added + 1
  end
end
if added > 0 then
  wake(KEYS[2])
end
return added
