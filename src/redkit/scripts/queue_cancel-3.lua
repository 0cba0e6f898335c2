-- queue_cancel: cancel a job that has not started (waiting or delayed).
-- KEYS[1] the job's hash   KEYS[2] wait   KEYS[3] delayed
-- ARGV[1] key base   ARGV[2] the job's id   ARGV[3] ms the cancelled job is kept
-- Returns 1 when cancelled, 0 when it is running, finished or unknown.
--!include _queue.lua
local st = redis.call('HGET', KEYS[1], 'st')
if st ~= 'waiting' and st ~= 'delayed' then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[1], 'st', 'cancelled')
redis.call('HDEL', KEYS[1], 'p')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
notify(ARGV[1], ARGV[2], KEYS[1])
return 1
