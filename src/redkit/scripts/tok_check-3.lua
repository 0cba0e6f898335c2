-- tok_check: is a token revoked? Its id, its user's watermark and its family, in one step.
-- KEYS[1] the deny-list entry of the token id   KEYS[2] the user's watermark
-- KEYS[3] the token's refresh family
-- ARGV[1] issued-at, ms since the epoch ('' = unknown)   ARGV[2] '1' when the token has an id
-- ARGV[3] '1' when the token belongs to a family
-- Returns 0 valid, 1 revoked by id, 2 issued at or before the watermark (or no issued-at
-- while a watermark exists), 3 its family was revoked; -1 when the watermark or the
-- family key holds another Redis type, -2 when the watermark is not a number.
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return 1
end
local mark = redis.pcall('GET', KEYS[2])
if type(mark) == 'table' and mark.err then
  return -1
end
if mark then
  mark = tonumber(mark)
  if not mark then
    return -2
  end
  if ARGV[1] == '' or tonumber(ARGV[1]) <= mark then
    return 2
  end
end
if ARGV[3] == '1' then
  local revoked = redis.pcall('HGET', KEYS[3], 'rev')
  if type(revoked) == 'table' and revoked.err then
    return -1
  end
  if revoked == '1' then
    return 3
  end
end
return 0
