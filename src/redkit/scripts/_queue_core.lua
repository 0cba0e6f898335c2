-- _queue_core: the helpers of the queue_* scripts that adding a job needs (included, not a
-- script; _queue.lua has the rest and includes this one).
-- A job lives in the hash base..'j:'..id; base is the queue's key group ('{p:queue:n}:'),
-- so every key built here shares the queue's hash tag (one cluster slot). Its counters,
-- 'n' (deliveries), 'tk' (fencing token) and 'c' (deaths), are absent until they count
-- something: every reader takes an absent one as 0.
local function job_key(base, id)
  return base .. 'j:' .. id
end
-- Scores order jobs by priority, then enqueue order: priority * ORDER + order (2^40).
local ORDER = 1099511627776
-- Leave one wake-up signal on the queue's wake list (idle workers BLPOP it).
local function wake(list)
  if redis.call('LLEN', list) == 0 then
    redis.call('RPUSH', list, 1)
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
