-- tok_check: is a token revoked? Its id, its user's watermark and its family, in one step.
-- KEYS[1] the deny-list entry of the token id   KEYS[2] the user's watermark
-- KEYS[3] the token's refresh family
-- ARGV[1] issued-at, ms since the epoch ('' = unknown)   ARGV[2] '1' when the token has an id
-- ARGV[3] '1' when the token belongs to a family
-- Returns 0 valid, 1 revoked by id, 2 issued at or before the watermark (or no issued-at
-- while a watermark exists), 3 its family was revoked.
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return 1
end
local mark = tonumber(redis.call('GET', KEYS[2]))
if mark and (ARGV[1] == '' or tonumber(ARGV[1]) <= mark) then
  return 2
end
if ARGV[3] == '1' and redis.call('HGET', KEYS[3], 'rev') == '1' then
  return 3
end
return 0
