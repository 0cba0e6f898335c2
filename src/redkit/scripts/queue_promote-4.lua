-- queue_promote: make a delayed job ready now.
-- KEYS[1] the job's hash   KEYS[2] delayed   KEYS[3] wait   KEYS[4] inbox
-- ARGV[1] the job's id   ARGV[2] key base (a grouped job goes to its group's set)
-- Returns 1 when the job was delayed and is now waiting, else 0.
--!include _queue.lua
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'st', 'waiting')
ready(ARGV[2], KEYS[3], ARGV[1], KEYS[1])
wake(KEYS[4])
return 1
