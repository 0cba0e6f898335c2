-- generation(key): a user's generation (raised by every "log out everywhere"), 0 when
-- unset; -1 when the key holds another Redis type, -2 when it is not an integer (a
-- generation is never negative, so a caller returns these codes as they are).
local function generation(key)
  local gen = redis.pcall('GET', key)
  if type(gen) == 'table' and gen.err then
    return -1
  end
  if gen and not tonumber(gen) then
    return -2
  end
  return tonumber(gen) or 0
end
