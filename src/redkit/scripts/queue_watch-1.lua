-- queue_watch: a job's state and outcome; when it is not finished yet, register one waiter
-- that the finishing script will wake (RPUSH on the job's signal list).
-- KEYS[1] the job's hash
-- ARGV[1] 1 to register a waiter when the job is not finished, 0 to only read
-- ARGV[2] key base (a plain job may wait in the queue's inbox: see _queue_core.lua)
-- Returns {state or false, deliveries, result, error, deaths}; state false: no such job;
--   LOOK_AGAIN (-1) when it is not found yet and the inbox holds more jobs to take in.
--!include _queue_core.lua
local st, n, r, e, c = unpack(redis.call('HMGET', KEYS[1], 'st', 'n', 'r', 'e', 'c'))
if not st then
  local more = ingest_all(ARGV[2])
  st, n, r, e, c = unpack(redis.call('HMGET', KEYS[1], 'st', 'n', 'r', 'e', 'c'))
  if not st and more then
    return LOOK_AGAIN
  end
end
if st and ARGV[1] == '1' and st ~= 'done' and st ~= 'failed' and st ~= 'dead'
    and st ~= 'cancelled' then
  redis.call('HINCRBY', KEYS[1], 'w', 1)
end
return {st, n, r, e, c}
