-- _idem_owner: whether a caller owns an idempotency record (included, not a script).
-- owned(key, token) returns 1 when ``token`` owns the record, 0 when it does not (its
-- lease expired, or another caller holds it), -1 when the key holds another Redis type.
local function owned(key, token)
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'hash' and kind ~= 'none' then
    return -1
  end
  if redis.call('HGET', key, 'owner') ~= token then
    return 0
  end
  return 1
end
