-- tok_family_rotate: use a refresh token: the current one is exchanged for the next; any
-- other token of the family is a reuse (a stolen copy, or the thief's) and revokes it all.
-- KEYS[1] the family hash
-- ARGV[1] the presented token id   ARGV[2] the next token id
-- ARGV[3] the next token's expiry, ms since the epoch
-- Returns 1 rotated, 2 reuse detected (the family is now revoked), 3 the family was
-- already revoked, 0 unknown or expired family; -1 when the key holds another Redis type.
local cur = redis.pcall('HGET', KEYS[1], 'cur')
if type(cur) == 'table' and cur.err then
  return -1
end
if not cur then
  return 0
end
if redis.call('HGET', KEYS[1], 'rev') == '1' then
  return 3
end
if cur ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'rev', '1')
  return 2
end
redis.call('HSET', KEYS[1], 'cur', ARGV[2])
if tonumber(ARGV[3]) > redis.call('PEXPIRETIME', KEYS[1]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
end
return 1
