-- queue_purge: delete up to N jobs of one state (waiting, delayed, blocked, done, failed or
-- dead). Producers waiting for a deleted job's outcome are woken (they then find no job).
-- KEYS[1] the state's zset (for waiting: wait; the grouped waiting jobs follow)
-- ARGV[1] key base   ARGV[2] the most jobs to delete in this call   ARGV[3] 'waiting' to
--   include the grouped waiting jobs (base..'gwait', each also in its group's zset
--   base..'g:'..group; a group left without waiting jobs leaves the ring base..'groups')
-- Returns how many jobs were deleted.
-- Also deletes job hashes (base..'j:'..id) with a flow parent's children's outcomes
-- (base..'j:'..id..':kids'), and wakes waiters' signal lists (base..'s:'..id).
--!include _queue.lua
local base, limit = ARGV[1], tonumber(ARGV[2])
local function drop(id)
  local jk = job_key(base, id)
  notify(base, id, jk)
  redis.call('DEL', jk, jk .. ':kids')
end
if ARGV[3] == 'waiting' then
  ingest_all(base)  -- the plain jobs in the inbox wait too
end
local ids = redis.call('ZRANGE', KEYS[1], 0, limit - 1)
for _, id in ipairs(ids) do
  drop(id)
end
if #ids > 0 then
  redis.call('ZREM', KEYS[1], unpack(ids))
end
local deleted = #ids
if ARGV[3] == 'waiting' and deleted < limit then
  local gwait = base .. 'gwait'
  local grouped = redis.call('ZRANGE', gwait, 0, limit - deleted - 1)
  local touched = {}
  for _, id in ipairs(grouped) do
    local g = redis.call('HGET', job_key(base, id), 'g')
    if g then
      redis.call('ZREM', base .. 'g:' .. g, id)
      touched[g] = true
    end
    drop(id)
  end
  if #grouped > 0 then
    redis.call('ZREM', gwait, unpack(grouped))
  end
  for g in pairs(touched) do
    if redis.call('EXISTS', base .. 'g:' .. g) == 0 then
      redis.call('LREM', base .. 'groups', 0, g)
    end
  end
  deleted = deleted + #grouped
end
return deleted
