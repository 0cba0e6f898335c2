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
-- Create a job hash and queue it: waiting (delay_ms 0) or delayed. The caller has made
-- sure the id is new (HSETNX on 't'). meta holds the enqueue counter. Returns its score.
local function create_job(jk, id, task, payload, priority, delay_ms, now, wait, delayed, meta)
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local sc = int(tonumber(priority) * ORDER + seq % ORDER)
  local st = 'waiting'
  if tonumber(delay_ms) > 0 then
    st = 'delayed'
    redis.call('ZADD', delayed, now + tonumber(delay_ms), id)
  else
    redis.call('ZADD', wait, sc, id)
  end
  redis.call('HSET', jk, 't', task, 'p', payload, 'sc', sc, 'n', 0, 'tk', 0, 'c', 0, 'at', now,
    'st', st)
  return sc
end
