-- tok_check: is a token revoked by its user's watermark or its refresh family?
-- (Its id is looked up beside this script, in the same round trip: the deny-list entry is
-- keyed by the id alone, so it lives in its own slot on a cluster.)
-- KEYS[1] the user's watermark   KEYS[2] the token's refresh family
-- ARGV[1] issued-at, ms since the epoch ('' = unknown)
-- ARGV[2] '1' when the token belongs to a family
-- Returns 0 valid, 2 issued at or before the watermark (or no issued-at while a watermark
-- exists), 3 its family was revoked; -1 when the watermark or the family key holds
-- another Redis type, -2 when the watermark is not a number.
local mark = redis.pcall('GET', KEYS[1])
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
if ARGV[2] == '1' then
  local revoked = redis.pcall('HGET', KEYS[2], 'rev')
  if type(revoked) == 'table' and revoked.err then
    return -1
  end
  if revoked == '1' then
    return 3
  end
end
return 0
