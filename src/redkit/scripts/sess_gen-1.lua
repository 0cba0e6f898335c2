-- sess_gen: a user's generation (raised by every "log out everywhere") and the server's
-- clock, read together at the start of a login: the login's session is born in this
-- generation, at this time.
-- KEYS[1] the user's generation
-- Returns {generation (0 when unset), now in ms since the epoch}; -1 when the key holds
-- another Redis type, -2 when it is not an integer.
--!include _clock.lua
--!include _sess_gen.lua
local gen = generation(KEYS[1])
if gen < 0 then
  return gen
end
return {gen, now_ms()}
