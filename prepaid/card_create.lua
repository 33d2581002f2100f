-- card_create.lua: create one hash unless its key is taken: an account (card or tenant
-- account), or a voucher.
--
-- KEYS[1] account hash  callgate:{card:ID}:card
-- ARGV    field, value, field, value, ...
--
-- Returns 1 created, 0 the id exists (the caller draws another number).

if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
