-- events_dead: move messages a consumer cannot use to the dead-letter stream, with why.
-- KEYS[1] the stream, KEYS[2] its dead-letter stream
-- ARGV[1] group, ARGV[2] dead-letter stream MAXLEN ~, then per message: id, payload, reason
-- Returns how many were moved (acknowledged in the group and added to the dead letters).
local moved = 0
for i = 3, #ARGV, 3 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'd', ARGV[i + 1], 'id', ARGV[i],
    'group', ARGV[1], 'reason', ARGV[i + 2])
  moved = moved + redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
end
return moved
