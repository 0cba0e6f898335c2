-- _clock: the server's clock, for scripts that reason about time (included, not a script).
-- now_us() microseconds, now_ms() milliseconds since the epoch, from TIME.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
