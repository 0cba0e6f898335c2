-- tok_family_revoke: revoke a refresh-token family (its refresh and access tokens).
-- KEYS[1] the family hash
-- Returns 1 when revoked now, 0 when unknown, expired or already revoked; -1 when the
-- key holds another Redis type.
--!include _hash.lua
local absent = not_a_hash(KEYS[1])
if absent then
  return absent
end
return redis.call('HSET', KEYS[1], 'rev', '1')
