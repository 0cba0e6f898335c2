-- sess_index_add: record a logged-in session in its user's index, unless a "log out
-- everywhere" ran since the session's generation was read (then the caller ends it).
-- Entries past their absolute deadline are dropped; the index expires with its last one.
-- KEYS[1] the user's index (a sorted set: session id -> absolute deadline, ms)
-- KEYS[2] the user's generation (a counter that "end all" raises)
-- ARGV[1] session id   ARGV[2] its absolute deadline, ms   ARGV[3] an id to remove ('' none)
-- ARGV[4] the generation the session was born in
-- Returns 1 when recorded, 0 when the generation moved on; -1 when a key holds another
-- Redis type, -2 when the generation is not an integer.
--!include _clock.lua
--!include _sess_gen.lua
local gen = generation(KEYS[2])
if gen < 0 then
  return gen
end
if gen ~= tonumber(ARGV[4]) then
  return 0
end
local dropped = redis.pcall('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now_ms()))
if type(dropped) == 'table' and dropped.err then
  return -1
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if ARGV[3] ~= '' then
  redis.call('ZREM', KEYS[1], ARGV[3])
end
local last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', last))
if gen > 0 and redis.call('PEXPIRETIME', KEYS[2]) < last then
  redis.call('PEXPIREAT', KEYS[2], string.format('%.0f', last))
end
return 1
