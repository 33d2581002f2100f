-- debit.lua: pay the next billing steps of one call from its account, atomically.
-- The first call (seq 1) is the answer: it turns the session live and pays the first step
-- with the connection fee. Each later call pays the steps ahead of the call, one increment
-- or a few, never more than the balance holds: money only moves from `balance` to the
-- session's `charged` (and the account's `held`), so ticks never take an account below
-- zero. Steps are applied in order; the first one the balance cannot pay stops the run.
-- Free-bundle seconds pay whole steps while the call has not yet paid money for one.
-- Idempotent: each call carries seq = session seq + 1; a replay (its reply was lost) is
-- answered with the current state and changes nothing.
-- Fenced: a debit carries the epoch of its gateway's event ownership of the call's Asterisk
-- (gateway/event_owner.py). The session keeps the highest epoch it has seen and refuses
-- ('fenced', nothing changes) a debit from a lower one: a gateway that lost ownership
-- (frozen, cut off) cannot debit once the new owner has. The owner's lease is in another
-- hash slot, so the epoch comes in ARGV and is compared here. Epoch 0 is unfenced (one
-- gateway without ownership, tools, tests).
--
-- KEYS[1] account hash   callgate:{card:ID}:card
-- KEYS[2] session hash   callgate:{card:ID}:s:SID
--
-- ARGV[1] new seq
-- ARGV[2] now, epoch ms
-- ARGV[3] answer, epoch ms (recorded when the session is still 'authorized')
-- ARGV[4] paid_s the steps were computed from (must equal the session's)
-- ARGV[5] call offset now, ms: ending with paid_s * 1000 <= this marks the call cut (credit)
-- ARGV[6] bundle "PERIOD|PREVIOUS|ALLOWANCE_S|ROLLOVER_CAP_S" ('' = not covered by a bundle);
--         unused seconds roll over (up to the cap, -1 = never) from PREVIOUS only
-- ARGV[7] steps "END_S:RATE_SECONDS,..." in order: each step's end offset and the sum of
--         its seconds' per-minute rates
-- ARGV[8] owner epoch of the call's Asterisk ('' or 0: unfenced)
-- ARGV[9] the call's Asterisk, recorded as `origin` when the session has none ('' = keep)
--
-- Returns {status, seq, paid_s, charged, balance, bundle_left, free_s, cut, on_bundle}
--   status: ok | dup (seq already applied) | stale (resync from this state) | ended |
--           missing | fenced (a newer owner's epoch is recorded: stop ticking this call)

local D = 600000

local s = redis.call('HMGET', KEYS[2], 'state', 'seq', 'paid_s', 'exact', 'charged', 'free_s',
  'bundle', 'fee', 'tax_bp', 'tax_fixed', 'cut', 'epoch', 'origin')
if not s[1] then
  return {'missing', 0, 0, 0, 0, 0, 0, '', '0'}
end
local c = redis.call('HMGET', KEYS[1], 'balance', 'status', 'bundle_left', 'bundle_period')
local state = s[1]
local seq = tonumber(s[2]) or 0
local paid = tonumber(s[3]) or 0
local exact = tonumber(s[4]) or 0
local charged = tonumber(s[5]) or 0
local free = tonumber(s[6]) or 0
local bundle = s[7] or '0'
local cut = s[11] or ''
local balance = tonumber(c[1]) or 0
local bleft = tonumber(c[3]) or 0
local bper = c[4] or ''

local function reply(status)
  return {status, seq, paid, charged, balance, bleft, free, cut, bundle}
end

if state == 'ended' then
  return reply('ended')
end
local epoch = tonumber(ARGV[8]) or 0
if epoch > 0 then
  local seen = tonumber(s[12]) or 0
  if epoch < seen then
    return reply('fenced')
  end
  if epoch > seen then
    redis.call('HSET', KEYS[2], 'epoch', epoch)
  end
end
if ARGV[9] and ARGV[9] ~= '' and not s[13] then
  redis.call('HSET', KEYS[2], 'origin', ARGV[9])
end
local new_seq = tonumber(ARGV[1])
if seq >= new_seq then
  return reply('dup')
end
if seq ~= new_seq - 1 or paid ~= tonumber(ARGV[4]) then
  return reply('stale')
end
if state == 'authorized' then
  redis.call('HSET', KEYS[2], 'state', 'live', 'answer_ms', ARGV[3])
end

local use_bundle = bundle == '1' and ARGV[6] ~= ''
if use_bundle then
  local period, previous, allowance, cap = string.match(ARGV[6], '^([^|]*)|([^|]*)|(%d+)|(%-?%d+)$')
  if bper ~= period then
    local carry = 0
    if tonumber(cap) >= 0 and bper == previous then
      carry = math.min(bleft, tonumber(cap))
    end
    bleft = tonumber(allowance) + carry
    bper = period
    redis.call('HSET', KEYS[1], 'bundle_left', bleft, 'bundle_period', bper)
  end
end

local fee = tonumber(s[8]) or 0
local taxbp = s[9] or ''
local taxfixed = tonumber(s[10]) or 0

local function total(net)
  if net <= 0 then
    return 0
  end
  local t = net + taxfixed
  for bp in string.gmatch(taxbp, '%d+') do
    t = t + math.floor((net * tonumber(bp) + 5000) / 10000)
  end
  return t
end

local function ceil_div(a, b)
  local q = math.floor(a / b)
  if q * b < a then
    q = q + 1
  end
  return q
end

local spent, bused = 0, 0
if c[2] ~= 'blocked' and c[2] ~= 'expired' then
  for step_end, step_rs in string.gmatch(ARGV[7], '(%d+):(%d+)') do
    local stop = tonumber(step_end)
    local len = stop - paid
    local nexact = exact
    local free_step = use_bundle and bundle == '1' and bleft >= len
    if not free_step then
      nexact = exact + tonumber(step_rs)
    end
    local ntotal = total(fee + ceil_div(nexact, D))
    local delta = ntotal - charged
    if delta > balance then
      break
    end
    balance = balance - delta
    spent = spent + delta
    charged = ntotal
    exact = nexact
    paid = stop
    if free_step then
      bleft = bleft - len
      free = free + len
      bused = bused + len
    else
      bundle = '0'
    end
  end
end

seq = new_seq
if cut == '' and paid * 1000 <= tonumber(ARGV[5]) then
  cut = 'credit'
end
redis.call('HSET', KEYS[2], 'seq', seq, 'paid_s', paid, 'exact', string.format('%d', exact),
  'charged', string.format('%d', charged), 'free_s', free, 'bundle', bundle, 'cut', cut)
if spent ~= 0 then
  redis.call('HINCRBY', KEYS[1], 'balance', string.format('%d', -spent))
  redis.call('HINCRBY', KEYS[1], 'held', string.format('%d', spent))
end
if bused > 0 then
  redis.call('HSET', KEYS[1], 'bundle_left', bleft)
  redis.call('HSET', KEYS[2], 'bperiod', bper)
end
return reply('ok')
