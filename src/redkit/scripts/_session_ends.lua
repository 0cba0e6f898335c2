-- _session_ends: when a session hash ends (included, not a script).
-- session_ends(key) returns its absolute deadline 'm:a' and its own expiry 'm:x' (nil when
-- unset), in ms since the epoch; false when the session does not exist; or a status: -1
-- the key holds another Redis type, -3 a deadline or expiry that is not a number (not
-- written by redkit). earliest(absolute, expiry) is when it ends.
local function session_ends(key)
  local ends = redis.pcall('HMGET', key, 'm:a', 'm:x')
  if ends.err then
    return -1
  end
  if not ends[1] then
    return false
  end
  local absolute, expiry = tonumber(ends[1]), tonumber(ends[2])
  if not absolute or (ends[2] and not expiry) then
    return -3
  end
  return absolute, expiry
end
local function earliest(absolute, expiry)
  if expiry and expiry < absolute then
    return expiry
  end
  return absolute
end
