-- sess_gen: a user's generation (raised by every "log out everywhere") and the server's
-- clock, read together at the start of a login: the login's session is born in this
-- generation, at this time.
-- KEYS[1] the user's generation
-- Returns {generation (0 when unset), now in ms since the epoch}; -1 when the key holds
-- another Redis type, -2 when it is not an integer.
--!include _clock.lua
local gen = redis.pcall('GET', KEYS[1])
if type(gen) == 'table' and gen.err then
  return -1
end
if gen and not tonumber(gen) then
  return -2
end
return {tonumber(gen) or 0, now_ms()}
