-- card_credit.lua: add money to an account once per reference (topup, voucher, recharge).
-- A replay of the same reference changes nothing, so a retried or crashed-and-redone
-- credit can never count twice.
--
-- KEYS[1] account hash   callgate:{card:ID}:card
-- KEYS[2] credits hash   callgate:{card:ID}:credits   reference -> "amount:ms"
--
-- ARGV[1] reference
-- ARGV[2] amount, minor units (> 0)
-- ARGV[3] currency the amount is in
-- ARGV[4] now, epoch ms
-- ARGV[5] statuses that accept credit, comma separated
-- ARGV[6] "1": a credit to an account on hold lifts the hold
--
-- Returns {status, balance|detail}: ok | dup | missing | currency | state

local c = redis.call('HMGET', KEYS[1], 'status', 'currency', 'balance')
if not c[1] then
  return {'missing', 0}
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return {'dup', tonumber(c[3]) or 0}
end
if c[2] ~= ARGV[3] then
  return {'currency', c[2]}
end
if not string.find(',' .. ARGV[5] .. ',', ',' .. c[1] .. ',', 1, true) then
  return {'state', c[1]}
end
local balance = redis.call('HINCRBY', KEYS[1], 'balance', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':' .. ARGV[4])
if ARGV[6] == '1' and c[1] == 'hold' then
  redis.call('HSET', KEYS[1], 'status', 'active')
  redis.call('HDEL', KEYS[1], 'hold_reason')
end
return {'ok', balance}
