-- queue_delete: delete a job that no worker holds, whatever else its state.
-- KEYS[1] the job's hash   KEYS[2] wait   KEYS[3] delayed   KEYS[4] done   KEYS[5] failed
-- KEYS[6] dead
-- ARGV[1] key base   ARGV[2] the job's id
-- Returns 1 when deleted, 0 when there is no such job, 2 when a worker holds it (kept),
-- LOOK_AGAIN (-1) when it is not found yet and the inbox holds more jobs to take in.
--!include _queue.lua
local st = redis.call('HGET', KEYS[1], 'st')
if not st then
  local more = ingest_all(ARGV[1])  -- a plain job may wait in the inbox
  st = redis.call('HGET', KEYS[1], 'st')
  if not st then
    return more and LOOK_AGAIN or 0
  end
end
if st == 'active' then
  return 2
end
unready(ARGV[1], KEYS[2], ARGV[2], KEYS[1])  -- a grouped job waits in its group's set
for i = 2, 6 do
  redis.call('ZREM', KEYS[i], ARGV[2])
end
redis.call('ZREM', ARGV[1] .. 'blocked', ARGV[2])  -- a flow's parent waiting for children
redis.call('DEL', KEYS[1] .. ':kids')
notify(ARGV[1], ARGV[2], KEYS[1])
redis.call('DEL', KEYS[1])
return 1
