-- tok_revoke_all: raise a user's watermark: every token issued at or before it is revoked.
-- KEYS[1] the user's watermark (ms since the epoch)
-- ARGV[1] the watermark, ms since the epoch ('' = the server's now)
-- ARGV[2] how long to keep it, ms (the longest lifetime of any token)
-- Returns the watermark in force (it never moves back); -1 when the key holds another
-- Redis type, -2 when it holds something other than a number (nothing is changed then).
--!include _clock.lua
local old = redis.pcall('GET', KEYS[1])
if type(old) == 'table' and old.err then
  return -1
end
if old and not tonumber(old) then
  return -2
end
old = tonumber(old)
local mark = tonumber(ARGV[1])
if ARGV[1] == '' then
  mark = now_ms()
end
if old and old > mark then
  mark = old
end
redis.call('SET', KEYS[1], string.format('%.0f', mark), 'PX', ARGV[2])
return mark
