-- lock_acquire: take the lock if it is free and hand out the next fencing token.
-- KEYS[1] the lock (a string holding the owner token)
-- KEYS[2] the fencing counter of this lock name (never expires, so tokens only grow)
-- ARGV[1] owner token   ARGV[2] ttl in milliseconds
-- Returns {1, fencing_token} when acquired, {0, holder_pttl_ms} when another owner holds it.
-- Idempotent per owner token: a retry of an acquire whose reply was lost (a timeout after
-- the server ran it) finds its own token and gets the same fencing token back.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('INCR', KEYS[2])}
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(redis.call('GET', KEYS[2]))}
end
return {0, redis.call('PTTL', KEYS[1])}
