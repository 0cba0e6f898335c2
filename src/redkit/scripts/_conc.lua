-- _conc: the concurrency limiter's housekeeping (included, not a script).
-- tidy(leases, queue, seen, now) drops the expired leases, and the waiters whose
-- registration lapsed (gone or cancelled; at most 100 a call) from the queue.
local function tidy(leases, queue, seen, now)
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
  local gone = redis.call('ZRANGEBYSCORE', seen, '-inf', now, 'LIMIT', 0, 100)
  if #gone > 0 then
    redis.call('ZREM', queue, unpack(gone))
    redis.call('ZREM', seen, unpack(gone))
  end
end
