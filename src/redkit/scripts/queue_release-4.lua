-- queue_release: hand a worker's jobs back to the queue at once (not after a lease ends).
-- Handing back does not count as a delivery.
-- KEYS[1] workers   KEYS[2] this worker's job set   KEYS[3] wait   KEYS[4] inbox
-- ARGV[1] key base   ARGV[2] worker id
-- ARGV[3] 'stop': hand back every job and end the worker's lease; 'sync': hand back the
--   claims the worker does not know (made by a call whose reply it never read), a job it
--   knows under an older fencing token included
-- ARGV[4..] with 'sync', 'job:token' for each job the worker runs or has yet to report
-- Returns the number of jobs handed back.
--!include _queue.lua
local known = {}
for i = 4, #ARGV do
  local id, token = string.match(ARGV[i], '^(.*):(%d+)$')
  known[id] = token
end
local handed = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local jk = job_key(ARGV[1], id)
  if ARGV[3] == 'stop' or known[id] ~= redis.call('HGET', jk, 'tk') then
    redis.call('HINCRBY', jk, 'n', -1)
    redis.call('HSET', jk, 'st', 'waiting')
    group_left(ARGV[1], jk)
    ready(ARGV[1], KEYS[3], id, jk)
    redis.call('SREM', KEYS[2], id)
    handed = handed + 1
  end
end
if ARGV[3] == 'stop' then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[2])
end
if handed > 0 then
  wake(KEYS[4])
end
return handed
