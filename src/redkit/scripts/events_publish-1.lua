-- events_publish: fan-out publish with the topic's next sequence number, in one step.
-- KEYS[1] the topic's sequence counter
-- ARGV[1] the topic's channel (same hash tag as KEYS[1])
-- ARGV[2] the serialized payload
-- ARGV[3] '1' for sharded pub/sub (SPUBLISH, a cluster), '0' for PUBLISH
-- Returns {sequence number, number of subscribers that received it}.
local seq = redis.call('INCR', KEYS[1])
local verb = 'PUBLISH'
if ARGV[3] == '1' then verb = 'SPUBLISH' end
local receivers = redis.call(verb, ARGV[1], seq .. ' ' .. ARGV[2])
return {seq, receivers}
