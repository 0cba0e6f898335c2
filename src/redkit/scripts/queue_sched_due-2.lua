-- queue_sched_due: the schedules whose next run has come, by the server's clock.
-- KEYS[1] schedules (hash: name -> definition)   KEYS[2] next runs (zset: name -> ms)
-- ARGV[1] the most schedules to return
-- Returns {now ms, ms of the earliest next run not yet due (-1: none), then three per due
--   schedule: name, next run ms (0: first tick to compute), definition}.
--!include _clock.lua
local now = now_ms()
local out = {now, -1}
local due = redis.call('ZRANGE', KEYS[2], '-inf', now, 'BYSCORE', 'LIMIT', 0, ARGV[1],
  'WITHSCORES')
for i = 1, #due, 2 do
  out[#out + 1] = due[i]
  out[#out + 1] = due[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[1], due[i]) or ''
end
local later = redis.call('ZRANGE', KEYS[2], '(' .. now, '+inf', 'BYSCORE', 'LIMIT', 0, 1,
  'WITHSCORES')
if #later > 0 then
  out[2] = tonumber(later[2])
end
return out
