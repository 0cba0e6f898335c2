-- queue_pause: pause or resume a queue. While the meta hash has the field 'paused', the
-- take script claims nothing (it still finishes, recovers and promotes jobs).
-- KEYS[1] meta (hash)   KEYS[2] wait   KEYS[3] inbox
-- ARGV[1] '1' to pause, '0' to resume   ARGV[2] key base (grouped jobs wait under it)
-- Returns 1 when the state changed, 0 when the queue already was in it.
--!include _queue.lua
if ARGV[1] == '1' then
  return redis.call('HSET', KEYS[1], 'paused', 1)
end
local changed = redis.call('HDEL', KEYS[1], 'paused')
if changed == 1 and any_ready(ARGV[2], KEYS[2]) then
  wake(KEYS[3])  -- idle workers claim what waited while the queue was paused
end
return changed
