-- session_open.lua: open the session of an authorized call on an account; the first use of
-- a sold card activates it (activation time, bundle cycle day, expiry after first use).
-- No money moves here: the first step is paid by debit.lua when the call is answered.
--
-- KEYS[1] account hash       callgate:{card:ID}:card
-- KEYS[2] session hash       callgate:{card:ID}:s:SID
-- KEYS[3] account live set   callgate:{card:ID}:live
--
-- ARGV[1] session id
-- ARGV[2] now, epoch ms
-- ARGV[3] cycle day to record if this use activates the card
-- ARGV[4] expires ms to record on activation ('' = keep)
-- ARGV[5] "1" for an emergency call (opened whatever the account's status)
-- ARGV[6..] session field, value pairs
--
-- Returns {status, account status before}: ok | missing | state | exists

local st = redis.call('HGET', KEYS[1], 'status')
if not st then
  return {'missing', ''}
end
if ARGV[5] ~= '1' and st ~= 'sold' and st ~= 'active' then
  return {'state', st}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'exists', st}
end
if st == 'sold' and ARGV[5] ~= '1' then
  redis.call('HSET', KEYS[1], 'status', 'active', 'activated_ms', ARGV[2], 'cycle_day', ARGV[3])
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'expires_ms', ARGV[4])
  end
end
local fields = {}
for i = 6, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('SADD', KEYS[3], ARGV[1])
return {'ok', st}
