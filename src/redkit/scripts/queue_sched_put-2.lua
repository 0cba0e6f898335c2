-- queue_sched_put: add or replace a queue's schedule. A new or changed definition gets
-- next-run 0 ("to be computed"): the next worker computes its first tick from the server's
-- clock; an unchanged one keeps its next run (publishing at every start loses no tick).
-- KEYS[1] schedules (hash: name -> definition)   KEYS[2] next runs (zset: name -> ms)
-- ARGV[1] name   ARGV[2] definition
-- Returns 1 when added or changed, 0 when unchanged.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] and redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
