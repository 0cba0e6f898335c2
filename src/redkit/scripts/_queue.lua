-- _queue: helpers shared by the queue_* scripts (included, not a script); the few that
-- adding a job needs are in _queue_core.lua, included here.
--!include _queue_core.lua
-- A number as an exact integer string, for a score or a time built into a string or
-- returned (Lua's default number format keeps 14 digits).
local function int(n)
  return string.format('%.0f', n)
end
-- Wake the producers waiting for this job's outcome (they registered in field 'w'; a
-- caller that has read the field passes it as w, false when it is absent).
local function notify(base, id, jk, w)
  if w == nil then
    w = redis.call('HGET', jk, 'w')
  end
  local waiters = tonumber(w or '0')
  if waiters > 0 then
    local signal = base .. 's:' .. id
    for _ = 1, waiters do
      redis.call('RPUSH', signal, 1)
    end
    redis.call('PEXPIRE', signal, 60000)
    redis.call('HDEL', jk, 'w')
  end
end
-- Drop the deduplication key that points to this job, if any (field 'u': its name; a
-- caller that has read the field passes it as u, false when it is absent).
local function release_unique(jk, id, u)
  if u == nil then
    u = redis.call('HGET', jk, 'u')
  end
  if u and redis.call('GET', u) == id then
    redis.call('DEL', u)
  end
end
-- Create a job hash and queue it: waiting (delay_ms 0; in wait, when given) or delayed.
-- The caller has made sure the id is new. meta holds the enqueue counter. Returns its score.
local function create_job(jk, id, task, payload, priority, delay_ms, now, wait, delayed, meta)
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local sc = int(tonumber(priority) * ORDER + seq % ORDER)
  local st = 'waiting'
  if tonumber(delay_ms) > 0 then
    st = 'delayed'
    redis.call('ZADD', delayed, now + tonumber(delay_ms), id)
  elseif wait then
    redis.call('ZADD', wait, sc, id)
  end
  redis.call('HSET', jk, 't', task, 'p', payload, 'sc', sc, 'at', now, 'st', st)
  return sc
end
-- Groups. A job with field 'g' waits in its group's zset (base..'g:'..group) instead of
-- the queue's wait, and in base..'gwait' (every grouped waiting job, for counting); the
-- list base..'groups' is the ring of groups with waiting jobs that claims rotate through;
-- the hash base..'gactive' counts each group's running jobs, base..'glimits' holds
-- per-group concurrency limits (field '*': the default for every group).
-- Put a job in the queue, ready to be claimed: its group's zset, or the queue's wait.
local function ready(base, wait, id, jk)
  local g, sc = unpack(redis.call('HMGET', jk, 'g', 'sc'))
  if g then
    redis.call('ZADD', base .. 'g:' .. g, sc, id)
    redis.call('ZADD', base .. 'gwait', sc, id)
    if not redis.call('LPOS', base .. 'groups', g) then
      redis.call('RPUSH', base .. 'groups', g)
    end
  else
    redis.call('ZADD', wait, sc, id)
  end
end
-- Take a job out of the ready sets (cancelled, deleted); a group left without waiting
-- jobs leaves the ring.
local function unready(base, wait, id, jk)
  local g = redis.call('HGET', jk, 'g')
  if g then
    if redis.call('ZREM', base .. 'g:' .. g, id) == 1
        and redis.call('EXISTS', base .. 'g:' .. g) == 0 then
      redis.call('LREM', base .. 'groups', 0, g)
    end
    redis.call('ZREM', base .. 'gwait', id)
  else
    redis.call('ZREM', wait, id)
  end
end
-- n jobs stopped running: they leave the queue's running count (field '*' of
-- base..'gactive'; '*' is never an escaped group name).
local function running_less(base, n)
  if redis.call('HINCRBY', base .. 'gactive', '*', -n) <= 0 then
    redis.call('HDEL', base .. 'gactive', '*')
  end
end
-- Whether the queue has a concurrency limit (meta field 'conc'), read once per call.
local queue_conc = nil
local function has_conc(base)
  if queue_conc == nil then
    queue_conc = redis.call('HEXISTS', base .. 'meta', 'conc') == 1
  end
  return queue_conc
end
-- A job stopped running (finished, handed back, its worker died): it leaves the queue's
-- running count (unless counted: the caller takes its jobs off with running_less) and
-- its group's (g: its field 'g' when the caller has read it, false when absent).
-- Returns true when a job may have waited for its place: its group has jobs waiting, or
-- the queue has a concurrency limit.
local function group_left(base, jk, g, counted)
  local active = base .. 'gactive'
  if not counted then
    running_less(base, 1)
  end
  if g == nil then
    g = redis.call('HGET', jk, 'g')
  end
  local waiting = false
  if g then
    if redis.call('HINCRBY', active, g, -1) <= 0 then
      redis.call('HDEL', active, g)
    end
    waiting = redis.call('EXISTS', base .. 'g:' .. g) == 1
  end
  return waiting or has_conc(base)
end
-- How many of `want` jobs the queue's limits let start now: its concurrency limit (meta
-- 'conc', against the running count) and its rate limit (meta 'ri', 'rb': the rate
-- limiter's GCRA, an emission interval in us and a burst, with the theoretical arrival
-- time in base..'rate'). Returns the allowance and the rate's state for charge_rate.
local function allowance(base, want, now_us)
  local conc, ri, rb = unpack(redis.call('HMGET', base .. 'meta', 'conc', 'ri', 'rb'))
  if conc then
    local running = tonumber(redis.call('HGET', base .. 'gactive', '*') or '0')
    want = math.min(want, math.max(0, tonumber(conc) - running))
  end
  if not ri then
    return want, nil, 0
  end
  local interval, burst = tonumber(ri), tonumber(rb)
  local ahead = (tonumber(redis.call('GET', base .. 'rate')) or now_us) - now_us
  if ahead < 0 then
    ahead = 0
  end
  local free = math.floor((burst * interval - ahead) / interval)
  return math.max(0, math.min(want, free)), interval, ahead
end
-- Charge the rate limit for `taken` jobs; returns microseconds until the next one may
-- start (0: now), for the worker's wait.
local function charge_rate(base, interval, ahead, taken, now_us)
  if not interval then
    return 0
  end
  if taken > 0 then
    ahead = ahead + taken * interval
    local tat = now_us + ahead
    redis.call('SET', base .. 'rate', int(tat), 'PXAT', int(math.ceil(tat / 1000) + 1))
  end
  local burst = tonumber(redis.call('HGET', base .. 'meta', 'rb'))
  return math.max(0, ahead - (burst - 1) * interval)
end
-- Undo pop_group's count for a job that was popped but not claimed after all.
local function group_unpop(base, jk)
  local g = redis.call('HGET', jk, 'g')
  if g and redis.call('HINCRBY', base .. 'gactive', g, -1) <= 0 then
    redis.call('HDEL', base .. 'gactive', g)
  end
end
-- A task's rate limit (base..'tlimits': task -> "interval_us burst", a GCRA, its TAT in
-- base..'trate:'..task): microseconds until a job of `task` may start (0: now, and the
-- start is charged).
local function task_rate_wait(base, task, now_us)
  local rate = redis.call('HGET', base .. 'tlimits', task)
  if not rate then
    return 0
  end
  local i, b = string.match(rate, '^(%d+) (%d+)$')
  local interval, tat_key = tonumber(i), base .. 'trate:' .. task
  local ahead = math.max(0, (tonumber(redis.call('GET', tat_key)) or now_us) - now_us)
  local wait = ahead - (tonumber(b) - 1) * interval
  if wait > 0 then
    return wait
  end
  local tat = now_us + ahead + interval
  redis.call('SET', tat_key, int(tat), 'PXAT', int(math.ceil(tat / 1000) + 1))
  return 0
end
-- Whether any job is ready, grouped or not.
local function any_ready(base, wait)
  return redis.call('ZCARD', wait) > 0 or redis.call('LLEN', base .. 'groups') > 0
end
-- Pop the next ready job of group g if its concurrency and rate limits allow; false
-- otherwise, and then, for a rate limit, the microseconds until it allows one. A group
-- left with no ready job leaves the ring. A group's rate limit (glimits field 'r:'..g,
-- or 'r:*') is "interval_us burst", a GCRA like the queue's, its TAT in base..'grate:'..g.
local function pop_group(base, g, now_us)
  local gz = base .. 'g:' .. g
  local glimits = base .. 'glimits'
  local limit = tonumber(redis.call('HGET', glimits, g)
    or redis.call('HGET', glimits, '*') or '0')
  if limit > 0 and tonumber(redis.call('HGET', base .. 'gactive', g) or '0') >= limit then
    return false, 0
  end
  local rate = redis.call('HGET', glimits, 'r:' .. g) or redis.call('HGET', glimits, 'r:*')
  local tat_key, interval, ahead = base .. 'grate:' .. g, 0, 0
  if rate then
    local i, b = string.match(rate, '^(%d+) (%d+)$')
    interval = tonumber(i)
    ahead = math.max(0, (tonumber(redis.call('GET', tat_key)) or now_us) - now_us)
    local wait = ahead - (tonumber(b) - 1) * interval
    if wait > 0 then
      return false, wait
    end
  end
  local popped = redis.call('ZPOPMIN', gz, 1)
  if redis.call('ZCARD', gz) == 0 then
    redis.call('LREM', base .. 'groups', -1, g)
  end
  if #popped == 0 then
    return false
  end
  redis.call('ZREM', base .. 'gwait', popped[1])
  redis.call('HINCRBY', base .. 'gactive', g, 1)
  if rate then
    local tat = now_us + ahead + interval
    redis.call('SET', tat_key, int(tat), 'PXAT', int(math.ceil(tat / 1000) + 1))
  end
  return popped[1], 0
end
-- Flows. A parent job waits in state 'blocked' (in base..'blocked', scored like a waiting
-- job, for counting and listing) with 'kids' children left and
-- its failure policy in 'fp' ('fail', 'ignore', 'continue'); each child names it in
-- 'par'. A child's outcome goes to the parent's results hash (jk..':kids': 'd:'..id ->
-- result, 'f:'..id -> error); the parent is made ready when no child is left, or at the
-- first failure with 'continue', and fails at the first failure with 'fail'.
-- Returns true when the parent became ready (a worker should be woken). A caller that
-- has read the child's field 'par' passes it as parent (false when absent).
local function child_ended(base, jk, id, ok, data, now, events, parent)
  if parent == nil then
    parent = redis.call('HGET', jk, 'par')
  end
  if not parent then
    return false
  end
  local pk = job_key(base, parent)
  local pst, policy = unpack(redis.call('HMGET', pk, 'st', 'fp'))
  if pst ~= 'blocked' then
    return false
  end
  local field = 'f:' .. id
  if ok then
    field = 'd:' .. id
  end
  -- a child that ended before (it failed, then was retried) was counted then: its new
  -- outcome replaces the old one
  local again = redis.call('HDEL', pk .. ':kids', 'f:' .. id, 'd:' .. id) > 0
  redis.call('HSET', pk .. ':kids', field, data or '')
  local left = 0
  if again then
    left = tonumber(redis.call('HGET', pk, 'kids'))
  else
    left = redis.call('HINCRBY', pk, 'kids', -1)
  end
  if not ok and policy == 'fail' then
    redis.call('ZREM', base .. 'blocked', parent)
    redis.call('HSET', pk, 'st', 'failed', 'e', data or '', 'ft', now)
    redis.call('DEL', pk .. ':kids')
    redis.call('ZADD', base .. 'failed', now, parent)
    notify(base, parent, pk)
    emit(base, events, 'failed', parent)
    return false
  end
  if left <= 0 or (not ok and policy == 'continue') then
    redis.call('ZREM', base .. 'blocked', parent)
    redis.call('HSET', pk, 'st', 'waiting')
    ready(base, base .. 'wait', parent, pk)
    return true
  end
  return false
end
-- End a job as cancelled, kept keep_ms (its payload dropped), and wake its waiters.
local function end_cancelled(base, id, jk, now, keep_ms, events)
  redis.call('HSET', jk, 'st', 'cancelled', 'ft', now)
  redis.call('HDEL', jk, 'p', 'cx')
  redis.call('DEL', jk .. ':kids')
  release_unique(jk, id)
  redis.call('PEXPIRE', jk, keep_ms)
  notify(base, id, jk)
  if child_ended(base, jk, id, false, redis.call('HGET', jk, 'e'), now, events) then
    wake(base .. 'inbox')
  end
end
