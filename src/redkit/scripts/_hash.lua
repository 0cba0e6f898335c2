-- _hash: whether a key holds a hash (included, not a script).
-- not_a_hash(key) returns false when the key holds a hash; else what a script that needs
-- one answers: 0 when the key does not exist, -1 (the status for another Redis type).
local function not_a_hash(key)
  local kind = redis.call('TYPE', key).ok
  if kind == 'hash' then
    return false
  end
  if kind == 'none' then
    return 0
  end
  return -1
end
