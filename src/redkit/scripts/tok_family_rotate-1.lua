-- tok_family_rotate: use a refresh token: the current one is exchanged for the next; any
-- other token of the family is a reuse (a stolen copy, or the thief's) and revokes it all.
-- KEYS[1] the family hash ('cur' the token id that may be used next, 'rev' the revoked
--         flag, 'prev' and 'at' the token id the last rotation took and when, ms)
-- ARGV[1] the presented token id   ARGV[2] the next token id
-- ARGV[3] the next token's expiry, ms since the epoch
-- ARGV[4] how long the same rotation may be retried, ms: a retry after a lost reply (a
--         timeout after the server ran it) presents the old token with the same next id
--         and is answered "rotated" again, not taken for a reuse
-- Returns 1 rotated, 2 reuse detected (the family is now revoked), 3 the family was
-- already revoked, 0 unknown or expired family; -1 when the key holds another Redis type.
--!include _clock.lua
local cur = redis.pcall('HGET', KEYS[1], 'cur')
if type(cur) == 'table' and cur.err then
  return -1
end
if not cur then
  return 0
end
local state = redis.call('HMGET', KEYS[1], 'rev', 'prev', 'at')
if state[1] == '1' then
  return 3
end
local now = now_ms()
if cur ~= ARGV[1] then
  if cur == ARGV[2] and state[2] == ARGV[1] and now - (tonumber(state[3]) or 0) <= tonumber(ARGV[4]) then
    return 1
  end
  redis.call('HSET', KEYS[1], 'rev', '1')
  return 2
end
redis.call('HSET', KEYS[1], 'cur', ARGV[2], 'prev', ARGV[1], 'at', string.format('%.0f', now))
if tonumber(ARGV[3]) > redis.call('PEXPIRETIME', KEYS[1]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
end
return 1
