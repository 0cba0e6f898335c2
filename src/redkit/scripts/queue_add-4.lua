-- queue_add: add jobs to a queue, skipping ids that already exist (deduplication).
-- KEYS[1] wait (zset: id -> priority and order)   KEYS[2] delayed (zset: id -> due ms)
-- KEYS[3] wake list (idle workers block on it)   KEYS[4] meta (hash: 'seq' counter)
-- ARGV[1] the queue's key base   ARGV[2] events kept (0: none; see _queue.lua emit)
-- ARGV[3..] five per job: id, task, payload, priority, delay in ms
-- Returns a list with, per job, 1 when added and 0 when a job with that id already exists.
--!include _clock.lua
--!include _queue.lua
local base = ARGV[1]
local now = now_ms()
local out = {}
local signal = false
local first_due = nil
-- one counter update per call: this call's jobs take the numbers after the previous top
local seq = redis.call('HINCRBY', KEYS[4], 'seq', (#ARGV - 2) / 5) - (#ARGV - 2) / 5
for i = 3, #ARGV, 5 do
  local id, delay = ARGV[i], tonumber(ARGV[i + 4])
  local jk = job_key(base, id)
  if redis.call('HSETNX', jk, 't', ARGV[i + 1]) == 0 then
    out[#out + 1] = 0  -- a job with this id exists
  else
    seq = seq + 1
    local score = int(tonumber(ARGV[i + 3]) * ORDER + seq % ORDER)
    if delay > 0 then
      local due = now + delay
      redis.call('HSET', jk, 'p', ARGV[i + 2], 'sc', score, 'n', 0, 'tk', 0, 'c', 0,
        'at', now, 'st', 'delayed')
      redis.call('ZADD', KEYS[2], due, id)
      first_due = first_due or tonumber(redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2])
      if due <= first_due then
        signal, first_due = true, due  -- idle workers must wake for it in time
      end
    else
      redis.call('HSET', jk, 'p', ARGV[i + 2], 'sc', score, 'n', 0, 'tk', 0, 'c', 0,
        'at', now, 'st', 'waiting')
      redis.call('ZADD', KEYS[1], score, id)
      signal = true
    end
    emit(base, ARGV[2], 'enqueued', id)
    out[#out + 1] = 1
  end
end
if signal then
  wake(KEYS[3])
end
return out
