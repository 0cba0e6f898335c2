-- rl_conc_acquire: take one of `limit` slots as a lease that expires unless renewed, in
-- arrival order: a caller gets a slot only when fewer waiters are ahead of it than slots
-- are free, so nobody (not even a holder that just released) cuts in line.
-- KEYS[1]  leases: a sorted set, member = lease id, score = its expiry (us)
-- KEYS[2]  the queue of waiters: a sorted set, member = lease id, score = arrival (us)
-- KEYS[3]  the waiters' registrations: member = lease id, score = when it lapses (us);
--          a waiter that stops asking (gone, cancelled) drops out of the queue then
-- KEYS[4]  the prefix of each waiter's wake-up list (prefix .. lease id), same hash tag
-- ARGV[1]  limit   ARGV[2]  lease (us)   ARGV[3]  lease id
-- ARGV[4]  mode: 0 = peek (no writes but cleanup), 1 = try (never queue), 2 = wait (queue)
-- ARGV[5]  how long a waiter's registration lasts (us)
-- Idempotent per lease id: asked again while its lease is held (an acquire retried after
-- its reply was lost: a timeout after the server ran it), it answers acquired again.
-- Returns {status, retry_after_us, free slots, waiters ahead}
--   status 0: acquired   1: no slot now (try)   2: no slot now; queued (or still queued)
--          3: a peek's answer ("waiters ahead" is then the queue's length)
--   retry_after_us: until the oldest lease expires, the latest a slot frees without a release
--!include _clock.lua
--!include _conc.lua
local now = now_us()
local leases, queue, seen = KEYS[1], KEYS[2], KEYS[3]
local limit, lease, id, mode = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
tidy(leases, queue, seen, now)
local free = limit - redis.call('ZCARD', leases)
if mode == '0' then return {3, 0, math.max(0, free), redis.call('ZCARD', queue)} end
if redis.call('ZSCORE', leases, id) then return {0, 0, math.max(0, free), 0} end
local rank = redis.call('ZRANK', queue, id)
local ahead = rank or redis.call('ZCARD', queue)
if ahead < free then
  redis.call('ZADD', leases, now + lease, id)
  local keep = math.ceil(lease / 1000) + 1
  if redis.call('PTTL', leases) < keep then redis.call('PEXPIRE', leases, keep) end
  if rank then
    redis.call('ZREM', queue, id)
    redis.call('ZREM', seen, id)
    redis.call('DEL', KEYS[4] .. id)
  end
  return {0, 0, free - 1, 0}
end
local retry = 0
if free <= 0 then
  local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
  retry = math.max(1, tonumber(first[2]) - now)
end
if mode == '1' then return {1, retry, math.max(0, free), ahead} end
local ttl = tonumber(ARGV[5])
if not rank then redis.call('ZADD', queue, now, id) end
redis.call('ZADD', seen, now + ttl, id)
local keep = math.ceil(ttl / 1000) + 1
redis.call('PEXPIRE', queue, keep)
redis.call('PEXPIRE', seen, keep)
return {2, retry, math.max(0, free), ahead}
