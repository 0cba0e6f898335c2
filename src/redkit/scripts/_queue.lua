-- _queue: helpers shared by the queue_* scripts (included, not a script).
-- A job lives in the hash base..'j:'..id; base is the queue's key group ('{p:queue:n}:'),
-- so every key built here shares the queue's hash tag (one cluster slot).
local function job_key(base, id)
  return base .. 'j:' .. id
end
-- A score as an exact integer string (Lua's default number format keeps 14 digits).
-- Priorities are multiplied by ORDER and the enqueue order added: 2^40.
local ORDER = 1099511627776
local function int(n)
  return string.format('%.0f', n)
end
-- Leave one wake-up signal on the queue's wake list (idle workers BLPOP it).
local function wake(list)
  if redis.call('LLEN', list) == 0 then
    redis.call('RPUSH', list, 1)
  end
end
-- Wake the producers waiting for this job's outcome (they registered in field 'w').
local function notify(base, id, jk)
  local waiters = tonumber(redis.call('HGET', jk, 'w') or '0')
  if waiters > 0 then
    local signal = base .. 's:' .. id
    for _ = 1, waiters do
      redis.call('RPUSH', signal, 1)
    end
    redis.call('PEXPIRE', signal, 60000)
    redis.call('HDEL', jk, 'w')
  end
end
-- Add an event to the queue's stream (base..'events'), trimmed to about maxlen entries;
-- maxlen 0: the queue keeps no events.
local function emit(base, maxlen, event, id, data)
  maxlen = tonumber(maxlen)
  if maxlen > 0 then
    if data then
      redis.call('XADD', base .. 'events', 'MAXLEN', '~', maxlen, '*', 'e', event, 'j', id,
        'd', data)
    else
      redis.call('XADD', base .. 'events', 'MAXLEN', '~', maxlen, '*', 'e', event, 'j', id)
    end
  end
end
-- Drop the deduplication key that points to this job, if any (field 'u': its name).
local function release_unique(jk, id)
  local u = redis.call('HGET', jk, 'u')
  if u and redis.call('GET', u) == id then
    redis.call('DEL', u)
  end
end
-- End a job as cancelled, kept keep_ms (its payload dropped), and wake its waiters.
local function end_cancelled(base, id, jk, now, keep_ms)
  redis.call('HSET', jk, 'st', 'cancelled', 'ft', now)
  redis.call('HDEL', jk, 'p', 'cx')
  release_unique(jk, id)
  redis.call('PEXPIRE', jk, keep_ms)
  notify(base, id, jk)
end
-- Create a job hash and queue it: waiting (delay_ms 0; in wait, when given) or delayed. The caller has made
-- sure the id is new (HSETNX on 't'). meta holds the enqueue counter. Returns its score.
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
  redis.call('HSET', jk, 't', task, 'p', payload, 'sc', sc, 'n', 0, 'tk', 0, 'c', 0, 'at', now,
    'st', st)
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
-- Take a job out of the ready sets (cancelled, purged).
local function unready(base, wait, id, jk)
  local g = redis.call('HGET', jk, 'g')
  if g then
    redis.call('ZREM', base .. 'g:' .. g, id)
    redis.call('ZREM', base .. 'gwait', id)
  else
    redis.call('ZREM', wait, id)
  end
end
-- A grouped job stopped running (finished, handed back, its worker died). Returns true
-- when its group has jobs waiting (one may have waited for this one's place).
local function group_left(base, jk)
  local g = redis.call('HGET', jk, 'g')
  if not g then
    return false
  end
  if redis.call('HINCRBY', base .. 'gactive', g, -1) <= 0 then
    redis.call('HDEL', base .. 'gactive', g)
  end
  return redis.call('EXISTS', base .. 'g:' .. g) == 1
end
-- Whether any job is ready, grouped or not.
local function any_ready(base, wait)
  return redis.call('ZCARD', wait) > 0 or redis.call('LLEN', base .. 'groups') > 0
end
-- Pop the next ready job of group g if its concurrency limit allows; false otherwise.
-- A group left with no ready job leaves the ring.
local function pop_group(base, g)
  local gz = base .. 'g:' .. g
  local limit = tonumber(redis.call('HGET', base .. 'glimits', g)
    or redis.call('HGET', base .. 'glimits', '*') or '0')
  if limit > 0 and tonumber(redis.call('HGET', base .. 'gactive', g) or '0') >= limit then
    return false
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
  return popped[1]
end
