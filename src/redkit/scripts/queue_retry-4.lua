-- queue_retry: put failed or dead-lettered jobs back in the queue, with a fresh budget
-- of retries and deaths.
-- KEYS[1] failed   KEYS[2] dead   KEYS[3] wait   KEYS[4] inbox
-- ARGV[1] key base   ARGV[2] 'all' for up to ARGV[3] jobs of both sets, 'one' for the ids
--   that follow
-- ARGV[3..] with 'all', how many at most; with 'one', the job ids
-- Returns the number of jobs put back.
--!include _queue.lua
local ids = {}
if ARGV[2] == 'all' then
  ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[3]) - #ids - 1)) do
    ids[#ids + 1] = id
  end
else
  for i = 3, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
end
local moved = 0
for _, id in ipairs(ids) do
  local jk = job_key(ARGV[1], id)
  local st = redis.call('HGET', jk, 'st')
  if st == 'failed' or st == 'dead' then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('HSET', jk, 'st', 'waiting', 'n', 0, 'c', 0)
    redis.call('HDEL', jk, 'ft')
    ready(ARGV[1], KEYS[3], id, jk)
    moved = moved + 1
  end
end
if moved > 0 then
  wake(KEYS[4])
end
return moved
