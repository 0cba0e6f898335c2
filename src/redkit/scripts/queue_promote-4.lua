-- queue_promote: make a delayed job ready now.
-- KEYS[1] the job's hash   KEYS[2] delayed   KEYS[3] wait   KEYS[4] wake list
-- ARGV[1] the job's id
-- Returns 1 when the job was delayed and is now waiting, else 0.
--!include _queue.lua
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'st', 'waiting')
redis.call('ZADD', KEYS[3], redis.call('HGET', KEYS[1], 'sc'), ARGV[1])
wake(KEYS[4])
return 1
