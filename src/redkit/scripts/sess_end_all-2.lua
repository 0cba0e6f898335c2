-- sess_end_all: start "log out everywhere": raise the user's generation (so a session
-- being created or rotated right now cannot join the index any more) and return every
-- session id in the index; the caller then ends each one and removes it from the index.
-- KEYS[1] the user's index (a sorted set: session id -> absolute deadline, ms)
-- KEYS[2] the user's generation
-- ARGV[1] the absolute timeout, ms (the generation outlives every session born before it)
-- Returns the session ids; -1 when a key holds another Redis type, -2 when the
-- generation is not an integer (nothing is changed then).
--!include _clock.lua
local index_kind = redis.call('TYPE', KEYS[1]).ok
local gen_kind = redis.call('TYPE', KEYS[2]).ok
if (index_kind ~= 'none' and index_kind ~= 'zset') or (gen_kind ~= 'none' and gen_kind ~= 'string') then
  return -1
end
local gen = redis.call('GET', KEYS[2])
if gen and not tonumber(gen) then
  return -2
end
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
redis.call('INCR', KEYS[2])
local keep = now + tonumber(ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]
if last and tonumber(last) > keep then
  keep = tonumber(last)
end
if redis.call('PEXPIRETIME', KEYS[2]) < keep then
  redis.call('PEXPIREAT', KEYS[2], string.format('%.0f', keep))
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
