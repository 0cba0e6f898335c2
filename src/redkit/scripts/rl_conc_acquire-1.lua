-- rl_conc_acquire: take one of `limit` slots as a lease that expires unless renewed.
-- KEYS[1]  a sorted set of leases: member = lease id, score = its expiry time (us)
-- ARGV[1]  limit   ARGV[2]  lease (us)   ARGV[3]  lease id   ARGV[4]  1 = acquire, 0 = peek
-- Returns {allowed 0|1, retry_after_us (until the oldest lease expires; 0 when allowed),
--          remaining slots, lease_us}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local acquire = ARGV[4] == '1'
if acquire then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now)) end
local held = redis.call('ZCOUNT', KEYS[1], string.format('(%d', now), '+inf')
if held < limit then
  if acquire then
    redis.call('ZADD', KEYS[1], string.format('%d', now + lease), ARGV[3])
    local keep = math.ceil(lease / 1000) + 1
    if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
    held = held + 1
  end
  return {1, 0, limit - held, lease}
end
local first = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
return {0, math.ceil(tonumber(first[2]) - now), 0, lease}
