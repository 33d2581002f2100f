-- event_owner_claim.lua: take or keep the event ownership of one Asterisk server.
-- One gateway at a time owns an Asterisk's duties that must run once (reconciliation,
-- campaign placement, prepaid debit scheduling). The lease is a key with a TTL; each
-- new holder gets the next epoch (a fencing token), so work stamped with an older epoch
-- can be told apart from the current owner's.
--
-- KEYS[1] callgate:{site:S}:event_owner:<asterisk>        string 'gateway_id epoch', TTL
-- KEYS[2] callgate:{site:S}:event_owner_epoch:<asterisk>  integer, the last epoch handed out
--
-- ARGV[1] gateway id (unique per process)
-- ARGV[2] lease time to live, ms
-- ARGV[3] gateway id of the caller's previous run, known dead ('' = none): a lease it still
--         holds is taken over at once, with a new epoch, instead of waiting for it to expire
--
-- Returns {1, epoch} when the caller owns it now (taken: SET NX PX, or kept: PEXPIRE),
--         {0, epoch, holder} when another gateway does.

local cur = redis.call('GET', KEYS[1])
if not cur then
  local epoch = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. epoch, 'NX', 'PX', ARGV[2])
  return {1, epoch}
end
local holder, epoch = string.match(cur, '^(%S+) (%d+)$')
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(epoch)}
end
if ARGV[3] and ARGV[3] ~= '' and holder == ARGV[3] then
  local new = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. new, 'PX', ARGV[2])
  return {1, new}
end
return {0, tonumber(epoch) or 0, holder or cur}
