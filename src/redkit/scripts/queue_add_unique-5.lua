-- queue_add_unique: add one job under a deduplication key, by its mode:
--   'q' unique while queued: a duplicate while the key's job is waiting or delayed;
--   'r' unique while queued or running: also while it is active;
--   't' throttle: at most one job per period (the key lives for the period);
--   'b' debounce: while the key's job is still delayed (its quiet period), the new
--       payload replaces the old one and the quiet period starts again; otherwise a new
--       job is added, delayed by the period.
-- The key holds the id of its job; a finished job drops its key (field 'u' of the job).
-- KEYS[1] the deduplication key   KEYS[2] wait   KEYS[3] delayed   KEYS[4] inbox
-- KEYS[5] meta (hash: 'seq' counter)
-- ARGV[1] key base   ARGV[2] mode   ARGV[3] period ms (throttle, debounce)
-- ARGV[4] job id (used when a job is added)   ARGV[5] task   ARGV[6] payload
-- ARGV[7] priority   ARGV[8] delay ms (modes q, r, t)   ARGV[9] events kept (0: none)
-- Returns {1 added, 0 duplicate, 2 replaced (debounce); the id of the job that counts}.
--!include _clock.lua
--!include _queue.lua
local base, mode, period = ARGV[1], ARGV[2], tonumber(ARGV[3])
ingest_all(base)  -- the plain jobs added before this one come first, and a duplicate id is seen
local now = now_ms()
local current = redis.call('GET', KEYS[1])
if current then
  local jk = job_key(base, current)
  local st = redis.call('HGET', jk, 'st')
  if mode == 't' then
    return {0, current}  -- the key lives for the period
  elseif mode == 'b' then
    if st == 'delayed' then
      redis.call('HSET', jk, 'p', ARGV[6])
      redis.call('ZADD', KEYS[3], now + period, current)
      return {2, current}
    end
  elseif st == 'waiting' or st == 'delayed' or (mode == 'r' and st == 'active') then
    return {0, current}
  end
end
local id = ARGV[4]
local jk = job_key(base, id)
if redis.call('EXISTS', jk) == 1 then
  return {0, id}  -- a job with this id exists (plain deduplication by id)
end
local delay = tonumber(ARGV[8])
if mode == 'b' then
  delay = period
end
create_job(jk, id, ARGV[5], ARGV[6], ARGV[7], delay, now, KEYS[2], KEYS[3], KEYS[5])
if mode == 't' then
  redis.call('SET', KEYS[1], id, 'PX', period)
else
  redis.call('SET', KEYS[1], id)
  redis.call('HSET', jk, 'u', KEYS[1])
end
wake(KEYS[4])
emit(base, ARGV[9], 'enqueued', id)
return {1, id}
