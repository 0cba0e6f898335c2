-- tok_family_new: start a refresh-token family with its first token.
-- KEYS[1] the family hash (cur = the one refresh token id that may be used next)
-- ARGV[1] the token id   ARGV[2] the token's expiry, ms since the epoch
-- Returns 1 when started, 0 when the family id was taken; -4 when the expiry has passed
-- (by the server's clock).
--!include _clock.lua
if tonumber(ARGV[2]) <= now_ms() then
  return -4
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'cur', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
