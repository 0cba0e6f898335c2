-- events_add: append messages to a durable topic's stream, trimming it approximately.
-- KEYS[1] the stream
-- ARGV[1] keep at most this many entries (MAXLEN ~), 0 for no length bound
-- ARGV[2] keep entries younger than this many ms (MINID ~, the server's clock), 0 for none
-- ARGV[3..] one payload per message
-- Returns the new entries' ids, in order.
--!include _clock.lua
local ids = {}
for i = 3, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'd', ARGV[i])
end
local maxlen, age = tonumber(ARGV[1]), tonumber(ARGV[2])
if maxlen > 0 then
  redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', maxlen)
end
if age > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', (now_ms() - age) .. '-0')
end
return ids
