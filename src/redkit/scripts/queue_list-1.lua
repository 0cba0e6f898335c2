-- queue_list: a page of the jobs in one state, with what an admin wants to see of each.
-- KEYS[1] the state's zset: wait (with the grouped waiting jobs), delayed or blocked
--   (oldest first), done, failed or dead (newest first), or workers, for the active jobs
--   (each worker's job set, in worker order)
-- ARGV[1] key base   ARGV[2] 'waiting', 'asc', 'desc' or 'active'   ARGV[3] offset
-- ARGV[4] count
-- Returns nine per job: id, score (due ms for delayed, finish time for done (us), failed
--   and dead (ms), the priority-and-order score for waiting, 0 for active), task, state,
--   deliveries, deaths, added (ms), payload, error.
-- Also reads job hashes (base..'j:'..id), workers' job sets (base..'w:'..worker) and, for
-- 'waiting', the grouped waiting jobs (base..'gwait'), merged with wait by score.
--!include _queue.lua
local base, mode = ARGV[1], ARGV[2]
local offset, count = tonumber(ARGV[3]), tonumber(ARGV[4])
local page = {}
if mode == 'waiting' then
  ingest_all(base)  -- the plain jobs in the inbox wait too
end
if mode == 'active' then
  local skipped = 0
  for _, worker in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local ids = redis.call('SMEMBERS', base .. 'w:' .. worker)
    table.sort(ids)
    for _, id in ipairs(ids) do
      if skipped < offset then
        skipped = skipped + 1
      elseif #page < count * 2 then
        page[#page + 1], page[#page + 2] = id, 0
      end
    end
    if #page >= count * 2 then
      break
    end
  end
elseif mode == 'waiting' then
  -- the first offset + count of each set, merged by score (priority, then enqueue order)
  local last = offset + count - 1
  local a = redis.call('ZRANGE', KEYS[1], 0, last, 'WITHSCORES')
  local b = redis.call('ZRANGE', base .. 'gwait', 0, last, 'WITHSCORES')
  local i, j, n = 1, 1, 0
  while n <= last and (i <= #a or j <= #b) do
    local from_a = j > #b or (i <= #a and tonumber(a[i + 1]) <= tonumber(b[j + 1]))
    local id, score
    if from_a then
      id, score, i = a[i], a[i + 1], i + 2
    else
      id, score, j = b[j], b[j + 1], j + 2
    end
    if n >= offset then
      page[#page + 1], page[#page + 2] = id, score
    end
    n = n + 1
  end
else
  local command = mode == 'asc' and 'ZRANGE' or 'ZREVRANGE'
  page = redis.call(command, KEYS[1], offset, offset + count - 1, 'WITHSCORES')
end
local out = {}
for i = 1, #page, 2 do
  local id = page[i]
  local t, st, n, c, at, p, e = unpack(redis.call('HMGET', job_key(base, id),
    't', 'st', 'n', 'c', 'at', 'p', 'e'))
  out[#out + 1] = id
  out[#out + 1] = page[i + 1]
  out[#out + 1] = t or ''
  out[#out + 1] = st or ''
  out[#out + 1] = n or 0
  out[#out + 1] = c or 0
  out[#out + 1] = at or 0
  out[#out + 1] = p or ''
  out[#out + 1] = e or ''
end
return out
