-- _idem_wake: wake every waiter of an idempotency key (included, not a script).
-- wake_all(record, wake, signal_ms) pushes one signal per registered waiter (at least
-- one, at most 1000) onto the wake list, which expires after signal_ms.
local function wake_all(record, wake, signal_ms)
  local waiters = tonumber(redis.call('HGET', record, 'waiters') or '0') or 0
  if waiters < 1 then waiters = 1 end
  if waiters > 1000 then waiters = 1000 end
  local signals = {}
  for i = 1, waiters do signals[i] = 1 end
  redis.call('RPUSH', wake, unpack(signals))
  redis.call('PEXPIRE', wake, signal_ms)
end
