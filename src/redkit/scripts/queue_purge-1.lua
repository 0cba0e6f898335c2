-- queue_purge: delete up to N jobs of one state (waiting, delayed, done, failed or dead).
-- Producers waiting for a deleted job's outcome are woken (they then find no job).
-- KEYS[1] the state's zset
-- ARGV[1] key base   ARGV[2] the most jobs to delete in this call
-- Returns how many jobs were deleted.
-- Also deletes job hashes (base..'j:'..id) and wakes waiters' signal lists (base..'s:'..id).
--!include _queue.lua
local base = ARGV[1]
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do
  local jk = job_key(base, id)
  notify(base, id, jk)
  redis.call('DEL', jk)
end
if #ids > 0 then
  redis.call('ZREM', KEYS[1], unpack(ids))
end
return #ids
