-- queue_add: add jobs to a queue, skipping ids that already exist (deduplication).
-- KEYS[1] wait (zset: id -> priority and order). The other keys are built from the queue's
--   key base, KEYS[1] less its 'wait' ('{p:queue:n}:'), so they share its hash tag:
--   base..'delayed' (zset: id -> due ms), base..'inbox' (see _queue_core.lua),
--   base..'meta' (hash: 'seq' counts the jobs ever added) and the jobs' hashes.
-- ARGV three per job: id, task, payload; preceded by one more, what the jobs share, when
--   they have a priority or a delay or the queue keeps events: 'priority delay_ms events'
--   (events: how many the queue keeps, 0: none; see _queue_core.lua emit). The usual call
--   goes without it: each argument costs the producer (docs/queue.md).
-- Returns how many jobs were added (a job whose id exists is skipped).
--!include _clock.lua
--!include _queue_core.lua
local wait = KEYS[1]
local base = string.sub(wait, 1, -5)
ingest_all(base)  -- the plain jobs added before these come first
local first, priority, delay, events = 1, 0, 0, 0
if #ARGV % 3 == 1 then
  local p, d, e = string.match(ARGV[1], '^(%S+) (%S+) (%S+)$')
  first, priority, delay, events = 2, tonumber(p), tonumber(d), tonumber(e)
end
-- The new ids first: a duplicate id, or this very call run again after its reply was
-- lost, adds nothing and takes no number.
local new = {}
for i = first, #ARGV, 3 do
  if redis.call('HSETNX', job_key(base, ARGV[i]), 't', ARGV[i + 1]) == 1 then
    new[#new + 1] = i
  end
end
if #new == 0 then
  return 0
end
local now = now_ms()
-- one counter update per call: the jobs take the numbers after the previous top, in order
local seq = redis.call('HINCRBY', base .. 'meta', 'seq', #new) - #new
local st, signal, delayed, due = 'waiting', true, nil, nil
if delay > 0 then
  st, delayed, due = 'delayed', base .. 'delayed', now + delay
  -- idle workers must wake for the jobs in time when they are the next due
  local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')[2]
  signal = not first or due <= tonumber(first)
end
for _, i in ipairs(new) do
  local id = ARGV[i]
  seq = seq + 1
  -- below 2^52: exact, and a number argument reaches Redis with all its digits
  local score = priority * ORDER + seq % ORDER
  redis.call('HSET', job_key(base, id), 'p', ARGV[i + 2], 'sc', score, 'at', now, 'st', st)
  if due then
    redis.call('ZADD', delayed, due, id)
  else
    redis.call('ZADD', wait, score, id)
  end
  emit(base, events, 'enqueued', id)
end
if signal then
  wake(base .. 'inbox')
end
return #new
