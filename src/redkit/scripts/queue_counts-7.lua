-- queue_counts: how many jobs a queue holds in each state, its live workers, and how many
-- jobs it was ever given.
-- KEYS[1] wait   KEYS[2] delayed   KEYS[3] done   KEYS[4] failed   KEYS[5] dead
-- KEYS[6] workers (zset: worker id -> lease end, ms)   KEYS[7] meta (hash: 'seq')
-- ARGV[1] key base
-- Returns {waiting, delayed, active, done, failed, dead, blocked, live workers, jobs ever
--   added}.
-- Also reads the workers' job sets (base..'w:'..worker), the grouped waiting jobs
-- (base..'gwait') and the flows' parents waiting for their children (base..'blocked'), in
-- the same hash tag.
--!include _clock.lua
--!include _queue_core.lua
-- the plain jobs in the inbox wait too: those not taken in yet (a backlog no worker took
-- in) count as they are
local untaken = 0
if ingest_all(ARGV[1]) then
  untaken = redis.call('XLEN', ARGV[1] .. 'inbox')
end
local active = 0
for _, worker in ipairs(redis.call('ZRANGE', KEYS[6], 0, -1)) do
  active = active + redis.call('SCARD', ARGV[1] .. 'w:' .. worker)
end
return {
  redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', ARGV[1] .. 'gwait') + untaken,
  redis.call('ZCARD', KEYS[2]), active,
  redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[5]),
  redis.call('ZCARD', ARGV[1] .. 'blocked'),
  redis.call('ZCOUNT', KEYS[6], now_ms(), '+inf'),
  tonumber(redis.call('HGET', KEYS[7], 'seq') or '0'),
}
