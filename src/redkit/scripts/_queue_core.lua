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
-- The queue's inbox (base..'inbox', a stream) wakes idle workers, who block reading it
-- (and a stream of their own) from the start: any entry ends their wait. It holds plain jobs,
-- added with one XADD each (fields: id, task, 'p', payload; see ingest), and wake-ups (one
-- field pair, 'w' 1). Leave a wake-up there unless an entry already waits: every entry
-- present is newer than every worker's last claim, which empties the inbox (ingest; a
-- take that only reports, claiming nothing, leaves a wake-up for what it took in).
local function wake(inbox)
  if redis.call('XLEN', inbox) == 0 then
    redis.call('XADD', inbox, '*', 'w', 1)
  end
end
-- How many inbox entries one call takes in at the most (about 30 ms of server time).
local INGEST = 10000
-- Take in the oldest jobs of the inbox, in the order they were added: each becomes a
-- waiting job at priority 0, its add time the entry's (the server's clock at the XADD),
-- unless a job with its id exists (a duplicate id, or an XADD sent again after its reply
-- was lost). The entries taken in leave the inbox, wake-ups with them. Returns how many
-- entries were taken (INGEST: there may be more).
local function ingest(base)
  local inbox = base .. 'inbox'
  local entries = redis.call('XRANGE', inbox, '-', '+', 'COUNT', INGEST)
  local n = #entries
  if n == 0 then
    return 0
  end
  if n < INGEST then
    redis.call('DEL', inbox)
  else
    local ms, sq = string.match(entries[n][1], '^(%d+)-(%d+)$')
    redis.call('XTRIM', inbox, 'MINID', ms .. '-' .. string.format('%.0f', tonumber(sq) + 1))
  end
  local new = {}
  for i = 1, n do
    local f = entries[i][2]
    if #f == 4 and redis.call('HSETNX', job_key(base, f[1]), 't', f[2]) == 1 then
      new[#new + 1] = i
    end
  end
  if #new == 0 then
    return n
  end
  local seq = redis.call('HINCRBY', base .. 'meta', 'seq', #new) - #new
  local scored = {}
  for _, i in ipairs(new) do
    local id, f = entries[i][1], entries[i][2]
    seq = seq + 1
    local score = seq % ORDER
    redis.call('HSET', job_key(base, f[1]), 'p', f[4], 'sc', score,
      'at', string.match(id, '^%d+'), 'st', 'waiting')
    scored[#scored + 1] = score
    scored[#scored + 1] = f[1]
  end
  for i = 1, #scored, 1000 do
    redis.call('ZADD', base .. 'wait', unpack(scored, i, math.min(i + 999, #scored)))
  end
  return n
end
-- Take in the inbox's jobs, five calls of ingest at the most (about 150 ms for 50,000:
-- a backlog no worker took in is taken in over several calls, never in one that holds the
-- server up). Returns true when the inbox may hold more (a lookup that did not find its
-- job then answers LOOK_AGAIN). The caller (a lookup, a count, an add) takes nothing from
-- the workers: what it took in, it leaves a wake-up for.
local LOOK_AGAIN = -1
local function ingest_all(base)
  local took, n = false, 0
  for _ = 1, 5 do
    n = ingest(base)
    took = took or n > 0
    if n < INGEST then
      break
    end
  end
  if took then
    wake(base .. 'inbox')
  end
  return n == INGEST
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
