-- voucher_claim.lua: claim a single-use voucher for one card, or give a claim back.
-- The voucher and the card live in different cluster slots, so redemption is two atomic
-- steps: this claim (exactly one card can win it), then card_credit.lua keyed by the
-- voucher (idempotent). A claim left by a crash is finished by the same card redeeming
-- again; no other card can take it.
--
-- KEYS[1] voucher hash   callgate:{voucher:H}:voucher
--
-- ARGV[1] "claim" | "release" | "done"
-- ARGV[2] card id
-- ARGV[3] card's tenant
-- ARGV[4] card's currency
-- ARGV[5] now, epoch ms
--
-- Returns {status, value}: claimed | redeemed (already, by this card) | used | unknown |
--   expired | tenant | currency | released | done

local v = redis.call('HMGET', KEYS[1], 'status', 'value', 'currency', 'tenant', 'expires_ms', 'card')
local status, value = v[1], tonumber(v[2]) or 0
if not status then
  return {'unknown', 0}
end
local op, card = ARGV[1], ARGV[2]
if op == 'release' then
  if status == 'claimed' and v[6] == card then
    redis.call('HSET', KEYS[1], 'status', 'new')
    redis.call('HDEL', KEYS[1], 'card', 'claimed_ms')
  end
  return {'released', value}
end
if op == 'done' then
  if status == 'claimed' and v[6] == card then
    redis.call('HSET', KEYS[1], 'status', 'redeemed', 'redeemed_ms', ARGV[5])
  end
  return {'done', value}
end
if status == 'redeemed' then
  if v[6] == card then
    return {'redeemed', value}
  end
  return {'used', value}
end
if status == 'claimed' then
  if v[6] == card then
    return {'claimed', value}
  end
  return {'used', value}
end
local expires = tonumber(v[5]) or 0
if expires > 0 and tonumber(ARGV[5]) >= expires then
  return {'expired', value}
end
if v[4] and v[4] ~= '' and v[4] ~= ARGV[3] then
  return {'tenant', value}
end
if v[3] ~= ARGV[4] then
  return {'currency', value}
end
redis.call('HSET', KEYS[1], 'status', 'claimed', 'card', card, 'claimed_ms', ARGV[5])
return {'claimed', value}
