-- queue_purge: delete up to N jobs of one state (waiting, delayed, done, failed or dead).
-- KEYS[1] the state's sorted set
-- ARGV[1] key base   ARGV[2] the most jobs to delete in this call
-- Returns how many jobs were deleted (0: the set is empty).
--!include _queue.lua
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do
  local jk = job_key(ARGV[1], id)
  notify(ARGV[1], id, jk)
  redis.call('DEL', jk)
end
if #ids > 0 then
  redis.call('ZREM', KEYS[1], unpack(ids))
end
return #ids
