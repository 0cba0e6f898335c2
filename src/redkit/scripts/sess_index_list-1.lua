-- sess_index_list: the session ids in a user's index, after dropping expired entries.
-- KEYS[1] the user's index (a sorted set: session id -> absolute deadline in ms)
-- Returns the ids, oldest deadline first; -1 when the key holds another Redis type.
--!include _clock.lua
local dropped = redis.pcall('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now_ms()))
if type(dropped) == 'table' and dropped.err then
  return -1
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
