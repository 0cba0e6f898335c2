-- tok_family_revoke: revoke a refresh-token family (its refresh and access tokens).
-- KEYS[1] the family hash
-- Returns 1 when revoked now, 0 when unknown, expired or already revoked.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
return redis.call('HSET', KEYS[1], 'rev', '1')
