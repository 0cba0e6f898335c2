-- tok_family_revoke: revoke a refresh-token family (its refresh and access tokens).
-- KEYS[1] the family hash
-- Returns 1 when revoked now, 0 when unknown, expired or already revoked; -1 when the
-- key holds another Redis type.
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then
  return 0
end
if kind ~= 'hash' then
  return -1
end
return redis.call('HSET', KEYS[1], 'rev', '1')
