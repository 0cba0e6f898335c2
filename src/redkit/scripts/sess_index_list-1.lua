-- sess_index_list: the session ids in a user's index, after dropping expired entries.
-- KEYS[1] the user's index (a sorted set: session id -> absolute deadline in ms)
-- Returns the ids, oldest deadline first.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
return redis.call('ZRANGE', KEYS[1], 0, -1)
