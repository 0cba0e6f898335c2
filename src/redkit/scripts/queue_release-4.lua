-- queue_release: hand a stopping worker's unfinished jobs back to the queue at once, and
-- end its lease. Handing back does not count as a delivery.
-- KEYS[1] workers   KEYS[2] this worker's job set   KEYS[3] wait   KEYS[4] wake list
-- ARGV[1] key base   ARGV[2] worker id
-- Returns the number of jobs handed back.
--!include _queue.lua
local ids = redis.call('SMEMBERS', KEYS[2])
for _, id in ipairs(ids) do
  local jk = job_key(ARGV[1], id)
  redis.call('HINCRBY', jk, 'n', -1)
  redis.call('HSET', jk, 'st', 'waiting')
  redis.call('ZADD', KEYS[3], redis.call('HGET', jk, 'sc'), id)
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[2])
if #ids > 0 then
  wake(KEYS[4])
end
return #ids
