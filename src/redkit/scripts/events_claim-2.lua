-- events_claim: take over messages another consumer of the group left idle, and move
-- those delivered too often to the dead-letter stream.
-- KEYS[1] the stream, KEYS[2] its dead-letter stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle ms, ARGV[4] count, ARGV[5] cursor,
-- ARGV[6] dead after this many deliveries, ARGV[7] dead-letter stream MAXLEN ~
-- Returns {next cursor, dead-lettered count, id1, payload1, deliveries1, id2, ...}.
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[5],
  'COUNT', ARGV[4])
local out = {claimed[1], 0}
local limit = tonumber(ARGV[6])
for _, entry in ipairs(claimed[2]) do
  local id, fields = entry[1], entry[2]
  local payload = false
  if fields then
    for i = 1, #fields, 2 do
      if fields[i] == 'd' then payload = fields[i + 1] end
    end
  end
  local info = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  local deliveries = 1
  if info[1] then deliveries = tonumber(info[1][4]) end
  if payload == false then
    redis.call('XACK', KEYS[1], ARGV[1], id)
  elseif deliveries > limit then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'd', payload, 'id', id,
      'group', ARGV[1], 'reason', 'delivered ' .. deliveries .. ' times without an ack')
    redis.call('XACK', KEYS[1], ARGV[1], id)
    out[2] = out[2] + 1
  else
    out[#out + 1] = id
    out[#out + 1] = payload
    out[#out + 1] = deliveries
  end
end
return out
