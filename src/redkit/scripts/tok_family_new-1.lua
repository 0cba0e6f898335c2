-- tok_family_new: start a refresh-token family with its first token.
-- KEYS[1] the family hash (cur = the one refresh token id that may be used next)
-- ARGV[1] the token id   ARGV[2] the token's expiry, ms since the epoch
-- Returns 1 when started, 0 when the family id was taken, -1 when the expiry has passed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) <= now then
  return -1
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'cur', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
