-- settle.lua: end a call: charge its rated price exactly once and write its CDR.
-- The session paid its steps in advance (`charged`); the final price is computed by the
-- caller from the real answer and end times, so the difference is refunded or, when the
-- call ran past what was paid (late cut-off, gateway down), taken from the balance, but
-- never below minus one increment (`floor`): what cannot be taken is recorded in the CDR
-- as `uncollected`. The CDR goes to the account's outbox in the same step; it is relayed
-- to the global stream afterwards (cdr_append.lua, exactly once).
--
-- KEYS[1] account hash    callgate:{card:ID}:card
-- KEYS[2] session hash    callgate:{card:ID}:s:SID
-- KEYS[3] account live    callgate:{card:ID}:live
-- KEYS[4] CDR outbox      callgate:{card:ID}:cdr_outbox
-- KEYS[5] daily spend     callgate:{card:ID}:spend
--
-- ARGV[1] session seq the price was computed from ('' = any)
-- ARGV[2] rated total, minor units, taxes included
-- ARGV[3] bundle seconds the call keeps (the rest go back to the account)
-- ARGV[4] floor allowance: one increment's cost
-- ARGV[5] CDR JSON without its closing brace; money fields are appended here
-- ARGV[6] spend day YYYYMMDD
-- ARGV[7] keep the ended session this many seconds (replayed hangups)
-- ARGV[8] end, epoch ms
-- ARGV[9] ended by (caller, callee, limit, system); 'credit' wins when the call was cut
-- ARGV[10] session id
-- ARGV[11] answer, epoch ms, recorded when the session was never seen answered ('' none)
-- ARGV[12] '1': the settling ticker had not cut the call off when it hung up, so a cut
--          mark (from a debit that ran after the call's end) does not make it 'credit'
--
-- Returns {status, cdr json}: ok | ended (already settled: its CDR) | retry | missing

local s = redis.call('HMGET', KEYS[2], 'state', 'seq', 'charged', 'free_s', 'cut', 'bperiod', 'cdr')
if not s[1] then
  return {'missing', ''}
end
if s[1] == 'ended' then
  return {'ended', s[7] or ''}
end
if ARGV[1] ~= '' and tonumber(s[2]) ~= tonumber(ARGV[1]) then
  return {'retry', ''}
end
local c = redis.call('HMGET', KEYS[1], 'balance', 'bundle_period')
local balance = tonumber(c[1]) or 0
local charged = tonumber(s[3]) or 0
local total = tonumber(ARGV[2])

local back = (tonumber(s[4]) or 0) - tonumber(ARGV[3])
if back > 0 and s[6] and s[6] == c[2] then
  redis.call('HINCRBY', KEYS[1], 'bundle_left', string.format('%d', back))
end

local delta = total - charged
local take = delta
local uncollected = 0
if delta > 0 then
  local room = balance + tonumber(ARGV[4])
  if room < 0 then
    room = 0
  end
  if take > room then
    take = room
    uncollected = delta - room
  end
end
balance = balance - take
local charge = charged + take
-- integers as text: a Lua -0 would reach Redis as "-0", which HINCRBY refuses
redis.call('HINCRBY', KEYS[1], 'balance', string.format('%d', -take))
redis.call('HINCRBY', KEYS[1], 'held', string.format('%d', -charged))

local who = ARGV[9]
if s[5] == 'credit' and ARGV[12] ~= '1' then
  who = 'credit'
end
local cdr = ARGV[5] .. string.format(',"charge":%d,"uncollected":%d,"balance_after":%d,"ended_by":"%s"}',
  charge, uncollected, balance, who)
redis.call('HSET', KEYS[2], 'state', 'ended', 'end_ms', ARGV[8], 'cdr', cdr)
if ARGV[11] ~= '' and not redis.call('HGET', KEYS[2], 'answer_ms') then
  redis.call('HSET', KEYS[2], 'answer_ms', ARGV[11])
end
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('SREM', KEYS[3], ARGV[10])
redis.call('HSET', KEYS[4], ARGV[10], cdr)
if charge > 0 then
  redis.call('HINCRBY', KEYS[5], ARGV[6], string.format('%d', charge))
end
return {'ok', cdr}
