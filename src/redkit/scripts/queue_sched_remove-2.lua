-- queue_sched_remove: remove a queue's schedule (its definition and its next run).
-- KEYS[1] schedules (hash)   KEYS[2] next runs (zset)
-- ARGV[1] name
-- Returns 1 when removed, 0 when there was no such schedule.
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
