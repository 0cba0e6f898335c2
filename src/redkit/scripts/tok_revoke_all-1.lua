-- tok_revoke_all: raise a user's watermark: every token issued at or before it is revoked.
-- KEYS[1] the user's watermark (ms since the epoch)
-- ARGV[1] the watermark, ms since the epoch ('' = the server's now)
-- ARGV[2] how long to keep it, ms (the longest lifetime of any token)
-- Returns the watermark in force (it never moves back).
local mark = tonumber(ARGV[1])
if ARGV[1] == '' then
  local t = redis.call('TIME')
  mark = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local old = tonumber(redis.call('GET', KEYS[1]))
if old and old > mark then
  mark = old
end
redis.call('SET', KEYS[1], string.format('%.0f', mark), 'PX', ARGV[2])
return mark
