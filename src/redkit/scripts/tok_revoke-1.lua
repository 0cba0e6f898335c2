-- tok_revoke: put a token id on the deny-list until the token's own expiry.
-- KEYS[1] the deny-list entry of this token id
-- ARGV[1] when the entry may go: the token's expiry plus leeway, ms since the epoch
-- Returns 1 when recorded, 0 when the token had already expired (nothing to deny).
--!include _clock.lua
if tonumber(ARGV[1]) <= now_ms() then
  return 0
end
redis.call('SET', KEYS[1], '1', 'PXAT', ARGV[1])
return 1
