-- queue_take: a worker's one round trip: finish jobs, recover dead workers' jobs, promote
-- due delayed jobs, take in the inbox's plain jobs, and claim up to N ready jobs, leased
-- to this worker.
-- KEYS[1] wait   KEYS[2] delayed   KEYS[3] workers (zset: worker id -> lease end, ms)
-- KEYS[4] this worker's job set   KEYS[5] done (zset: id -> finished, microseconds)
-- KEYS[6] failed (zset)   KEYS[7] dead (zset: jobs whose workers kept dying)
-- KEYS[8] the inbox (plain jobs and wake-ups: see _queue_core.lua)
-- ARGV[1] key base   ARGV[2] worker id   ARGV[3] lease ms   ARGV[4] jobs to claim
-- ARGV[5] deaths before a job is dead-lettered   ARGV[6] ms a finished job is kept
-- ARGV[7] how many finished jobs are kept   ARGV[8] events kept (0: none)
-- ARGV[9..] five per finished job: id, fencing token, outcome ('d' done, 'r' retry,
--   'f' failed, 'c' cancelled), data (the result or the error), retry delay ms; a
--   progress report travels the same way, before its job's outcome: outcome 'p', data
--   the progress (kept in field 'pg' and added as an event while the job is this
--   delivery's)
-- A job whose cancellation was requested (field 'cx') ends as cancelled unless it is
-- reported done, and is cancelled instead of claimed when it is back in the queue, or
-- recovered (never dead-lettered) when its worker died.
-- Returns {ms until the next delayed job or lease end (-1: none), jobs not finished
--   because their lease was lost, then five per claimed job: id, token, task, payload,
--   deliveries}; a flow's parent's payload is a list: the payload, then its children's
--   outcomes as field, value pairs ('d:'..id result, 'f:'..id error).
-- Nothing is claimed while the queue is paused (field 'paused' of its meta hash,
-- base..'meta').
-- Also touches keys built from the base, in the same hash tag: job hashes (base..'j:'..id),
-- dead workers' job sets (base..'w:'..worker), this worker's own wake-ups (a stream,
-- base..'ww:'..worker), waiters' signal lists (base..'s:'..id), the deduplication key a
-- finished job held (its field 'u'), and the group keys (see _queue.lua: a grouped job
-- waits in its group's zset, claims go round robin).
--!include _clock.lua
--!include _queue.lua
local base, wid = ARGV[1], ARGV[2]
local now = now_ms()
-- done is ordered by finish time in microseconds, plus the report's place in this call,
-- so that trimming drops the oldest first even when many finish within a millisecond
local done_at = now_us()

local function enter_wait(id, jk)
  redis.call('HSET', jk, 'st', 'waiting')
  ready(base, KEYS[1], id, jk)
end

-- the jobs this call finished and claimed, added to the queue's running count, the done
-- set and the worker's job set once per call (not once per job)
local finished, done_ids = 0, {}
local claimed_ids = {}

-- Run `command` on `key` with `items` as its trailing arguments, a thousand per call.
local function all_at_once(command, key, items)
  for i = 1, #items, 1000 do
    redis.call(command, key, unpack(items, i, math.min(i + 999, #items)))
  end
end

local function finish(id, token, outcome, data, delay, order)
  local jk = job_key(base, id)
  local st, tk, g, u, par, w, fp, cx = unpack(redis.call('HMGET', jk, 'st', 'tk', 'g', 'u',
    'par', 'w', 'fp', 'cx'))
  if outcome == 'p' then
    if st == 'active' and tk == token then
      redis.call('HSET', jk, 'pg', data)
      emit(base, ARGV[8], 'progress', id, data)
    end
    return 0
  end
  if st ~= 'active' or tk ~= token or redis.call('SREM', KEYS[4], id) == 0 then
    return 1
  end
  finished = finished + 1
  if group_left(base, jk, g, true) then
    wake(KEYS[8])  -- an idle worker may claim the job that waited for this one's place
  end
  if outcome == 'c' or (outcome ~= 'd' and cx) then
    redis.call('HSET', jk, 'e', data)
    end_cancelled(base, id, jk, now, ARGV[6], ARGV[8])
    emit(base, ARGV[8], 'cancelled', id)
    return 0
  end
  if outcome ~= 'r' then
    release_unique(jk, id, u)
  end
  if outcome == 'd' then
    -- the payload is emptied, not deleted: one command, the same memory kept
    redis.call('HSET', jk, 'st', 'done', 'r', data, 'ft', now, 'p', '')
    redis.call('PEXPIRE', jk, ARGV[6])
    done_ids[#done_ids + 1] = int(done_at + order)
    done_ids[#done_ids + 1] = id
    emit(base, ARGV[8], 'completed', id)
    if fp then
      redis.call('DEL', jk .. ':kids')  -- a parent's children's outcomes: delivered
    end
    if child_ended(base, jk, id, true, data, now, ARGV[8], par) then
      wake(KEYS[8])
    end
  elseif outcome == 'f' then
    redis.call('HSET', jk, 'st', 'failed', 'e', data, 'ft', now)
    redis.call('ZADD', KEYS[6], now, id)
    emit(base, ARGV[8], 'failed', id)
    if fp then
      redis.call('DEL', jk .. ':kids')
    end
    if child_ended(base, jk, id, false, data, now, ARGV[8], par) then
      wake(KEYS[8])
    end
  else
    redis.call('HSET', jk, 'e', data)
    emit(base, ARGV[8], 'retried', id)
    local due = now + tonumber(delay)
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
    if due > now then
      redis.call('HSET', jk, 'st', 'delayed')
      redis.call('ZADD', KEYS[2], due, id)
    else
      enter_wait(id, jk)
    end
    if not first or due < tonumber(first) then
      wake(KEYS[8])  -- an idle worker recomputes how long it may block
    end
    return 0
  end
  notify(base, id, jk, w)
  return 0
end

local function trim_done()
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', int(done_at - tonumber(ARGV[6]) * 1000))
  local extra = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[7])
  if extra > 0 then
    for _, id in ipairs(redis.call('ZRANGE', KEYS[5], 0, extra - 1)) do
      redis.call('DEL', job_key(base, id))
    end
    redis.call('ZREMRANGEBYRANK', KEYS[5], 0, extra - 1)
  end
end

local function recover()
  for _, worker in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 10)) do
    local set = base .. 'w:' .. worker
    for _, id in ipairs(redis.call('SMEMBERS', set)) do
      local jk = job_key(base, id)
      group_left(base, jk)
      if redis.call('HEXISTS', jk, 'cx') == 1 then  -- cancelled while it ran: not run again
        end_cancelled(base, id, jk, now, ARGV[6], ARGV[8])
        emit(base, ARGV[8], 'cancelled', id)
      elseif redis.call('HINCRBY', jk, 'c', 1) >= tonumber(ARGV[5]) then
        redis.call('HSET', jk, 'st', 'dead', 'ft', now)
        release_unique(jk, id)
        emit(base, ARGV[8], 'dead', id)
        if child_ended(base, jk, id, false, redis.call('HGET', jk, 'e'), now, ARGV[8]) then
          wake(KEYS[8])
        end
        redis.call('ZADD', KEYS[7], now, id)
        notify(base, id, jk)
      else
        enter_wait(id, jk)
      end
    end
    redis.call('DEL', set)
    redis.call('ZREM', KEYS[3], worker)
  end
end

local function promote()
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)) do
    redis.call('ZREM', KEYS[2], id)
    enter_wait(id, job_key(base, id))
  end
end

-- First the inbox: the wake-ups this call leaves below must stay there for idle workers
if ingest(base) > 0 and ARGV[4] == '0' then
  -- a report claims nothing: a worker about to wait would miss what it took in (a job, a
  -- wake-up), so it leaves a wake-up of its own
  wake(KEYS[8])
end
if ARGV[4] ~= '0' then
  -- the worker's own wake-ups: this claim answers them (a report sent beside its next
  -- wait must not clear the stop or the timer that ends that wait)
  redis.call('DEL', base .. 'ww:' .. wid)
end
local stale = 0
for i = 9, #ARGV, 5 do
  stale = stale + finish(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], i)
end
if finished > 0 then
  running_less(base, finished)
end
if #done_ids > 0 then
  all_at_once('ZADD', KEYS[5], done_ids)
end
if #ARGV >= 9 then
  trim_done()
end
recover()
promote()
local out = {-1, stale}
local want = tonumber(ARGV[4])
if want > 0 then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), wid)
  if redis.call('HEXISTS', base .. 'meta', 'paused') == 1 then
    want = 0
  end
end
local task_limits = redis.call('EXISTS', base .. 'tlimits') == 1
-- Lease a popped job to this worker; false when it is not claimed after all: cancelled
-- meanwhile, or its task's rate limit makes it wait (it goes to the delayed set until
-- then).
local function claim(id)
  local jk = job_key(base, id)
  local cx, task, payload, fp, tk, n = unpack(redis.call('HMGET', jk, 'cx', 't', 'p', 'fp',
    'tk', 'n'))
  if cx then  -- cancelled while its worker was lost
    group_unpop(base, jk)
    end_cancelled(base, id, jk, now, ARGV[6], ARGV[8])
    emit(base, ARGV[8], 'cancelled', id)
    return false
  end
  if task_limits then
    local wait_us = task_rate_wait(base, task, done_at)
    if wait_us > 0 then
      group_unpop(base, jk)
      redis.call('HSET', jk, 'st', 'delayed')
      redis.call('ZADD', KEYS[2], now + math.ceil(wait_us / 1000), id)
      return false
    end
  end
  local token = int(tonumber(tk or '0') + 1)
  n = int(tonumber(n or '0') + 1)
  redis.call('HSET', jk, 'st', 'active', 'wk', wid, 'tk', token, 'n', n)
  claimed_ids[#claimed_ids + 1] = id
  if fp then  -- a flow's parent: its children's outcomes come with its payload
    payload = {payload, unpack(redis.call('HGETALL', jk .. ':kids'))}
  end
  out[#out + 1] = id
  out[#out + 1] = token
  out[#out + 1] = task
  out[#out + 1] = payload
  out[#out + 1] = n
  emit(base, ARGV[8], 'active', id)
  return true
end

local rate_wait_us, group_wait_us = 0, 0
if want > 0 then
  local asked, interval, ahead = want, nil, 0
  want, interval, ahead = allowance(base, want, done_at)
  local got, full = 0, false
  if want == 0 then
    got = 0  -- the queue's limits allow no start now
  elseif redis.call('LLEN', base .. 'groups') == 0 then
    local popped = redis.call('ZPOPMIN', KEYS[1], want)
    for i = 1, #popped, 2 do
      if claim(popped[i]) then
        got = got + 1
      end
    end
    full = #popped / 2 == want  -- more may be ready: wake another worker below
  else
    -- round robin: one job from each group in the ring's order (the ring turns, so the
    -- next call starts where this one stopped), then one ungrouped job; again while
    -- slots are free and a round claimed something
    local progress = true
    while got < want and progress do
      progress = false
      for _ = 1, redis.call('LLEN', base .. 'groups') do
        if got >= want then
          break
        end
        local g = redis.call('LMOVE', base .. 'groups', base .. 'groups', 'LEFT', 'RIGHT')
        local id, wait_us = pop_group(base, g, done_at)
        if id then
          if claim(id) then
            got = got + 1
          end
          progress = true
        elseif wait_us > 0 and (group_wait_us == 0 or wait_us < group_wait_us) then
          group_wait_us = wait_us
        end
      end
      if got < want then
        local popped = redis.call('ZPOPMIN', KEYS[1], 1)
        if #popped > 0 then
          if claim(popped[1]) then
            got = got + 1
          end
          progress = true
        end
      end
    end
  end
  if got > 0 then
    redis.call('HINCRBY', base .. 'gactive', '*', got)
    all_at_once('SADD', KEYS[4], claimed_ids)
  end
  if got == want then
    full = true
  end
  rate_wait_us = charge_rate(base, interval, ahead, got, done_at)
  if full and want == asked and any_ready(base, KEYS[1]) then
    wake(KEYS[8])
  end
  if rate_wait_us > 0 and not any_ready(base, KEYS[1]) then
    rate_wait_us = 0  -- nothing waits for the rate limit
  end
end
local due = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
local lease = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2]
local next_at = math.min(tonumber(due or '1e18'), tonumber(lease or '1e18'))
if rate_wait_us > 0 then  -- ready jobs wait for the rate limit: wake when one may start
  next_at = math.min(next_at, now + math.ceil(rate_wait_us / 1000))
end
if group_wait_us > 0 then  -- a group's jobs wait for its rate limit
  next_at = math.min(next_at, now + math.ceil(group_wait_us / 1000))
end
if next_at < 1e18 then
  out[1] = math.max(0, next_at - now)
end
return out
