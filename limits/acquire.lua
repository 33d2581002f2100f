-- acquire.lua: take every scope of one call, all or nothing, and record its lease.
--
-- KEYS[1] config      hash  'limit:<scope>'  limit (absent: unlimited, still counted)
--                           'tenant:<tenant>' 1 once the tenant has been set up
--                           'hard:<scope>'   hard maximum of a tenant counter (surcharge)
--                           'cps:<trunk scope>' calls per second
--                           'parent:<tenant>' reseller, 'policy:<tenant>' refuse|surcharge
-- KEYS[2] bucket      hash  '<trunk scope>/tokens', '<trunk scope>/at' (ms)
-- KEYS[3] used        hash  scope id -> calls holding it
-- KEYS[4] surcharged  hash  scope id and 'tenant/<T>' -> surcharged calls holding it
-- KEYS[5] deadlines   zset  lease id -> deadline ms
-- KEYS[6] released    zset  lease id -> release time ms (tombstones)
-- KEYS[7] holdings    hash  lease id -> 'scope ...|surcharged scope ...': what each lease
--                           holds; a lease exists while it has a holding
-- KEYS[8] lease       hash  this lease: tenant, status, meta, created
--
-- ARGV[1] lease id
-- ARGV[2] now, epoch ms
-- ARGV[3] lease TTL, ms
-- ARGV[4] mode: 'check'     refuse at a limit (the normal call)
--               'emergency' never refuse, never surcharge, still count
--               'restore'   re-count a live call (reconciliation, fail-open write-back):
--                           never refuse, take no CPS token, not a lease released recently
-- ARGV[5] tenant
-- ARGV[6] direction counter: 'inbound' | 'outbound'
-- ARGV[7] trunk scope id or ''
-- ARGV[8] other scopes, checked first in this order: 'reason scope reason scope ...'
--         (device_busy device/..., number_full number/..., license_pool_empty pool/...)
-- ARGV[9] meta stored verbatim on the lease: 'call_id origin flag...' ('-' for empty)
-- ARGV[10] '1': refuse a tenant that was never set up (unknown_tenant), else '' or absent
--
-- Check order: ARGV[8], then the tenant and its resellers (direction counter, total),
-- then trunk channels, then the trunk's calls per second.
--
-- Returns {1, status, scopes, surcharged scopes}   held; status ok|surcharge|emergency|restored
--         {3, status, scopes, surcharged scopes}   the lease already existed (a retried call)
--         {0, reason, scope, limit, in_use}         refused; nothing was taken
--                                                  (unknown_tenant: scope 'tenant/<T>')
--         {2, 'released'}                          restore of a lease released recently

local lease_id = ARGV[1]
local now = tonumber(ARGV[2])
local mode = ARGV[4]

local held = redis.call('HGET', KEYS[7], lease_id)
if held then
  local bar = string.find(held, '|', 1, true) or (#held + 1)
  local status = redis.call('HGET', KEYS[8], 'status') or 'ok'
  return {3, status, string.sub(held, 1, bar - 1), string.sub(held, bar + 1)}
end
if mode == 'restore' and redis.call('ZSCORE', KEYS[6], lease_id) then
  return {2, 'released'}
end

local check = (mode == 'check')
if check and ARGV[10] == '1' and redis.call('HEXISTS', KEYS[1], 'tenant:' .. ARGV[5]) == 0 then
  return {0, 'unknown_tenant', 'tenant/' .. ARGV[5], 0, 0}
end
local scopes = {}      -- every scope the call takes
local reasons = {}     -- refusal reason per scope
local owner = {}       -- tenant owning a tenant counter (its surcharge policy applies)
local seen = {}

local function add(scope, reason, tenant)
  if scope ~= '' and not seen[scope] then
    seen[scope] = true
    scopes[#scopes + 1] = scope
    reasons[#scopes] = reason
    owner[#scopes] = tenant or false
  end
end

for reason, scope in string.gmatch(ARGV[8], '(%S+)%s+(%S+)') do
  add(scope, reason)
end

local tenant = ARGV[5]
local dir = ARGV[6]
local walked = {}
local t = tenant
for _ = 1, 8 do
  if not t or walked[t] then break end
  walked[t] = true
  add('tenant/' .. t .. '/' .. dir, 'tenant_limit', t)
  add('tenant/' .. t .. '/total', 'tenant_limit', t)
  t = redis.call('HGET', KEYS[1], 'parent:' .. t)
end

local trunk = ARGV[7]
add(trunk, 'trunk_full')

local sur = {}
local sur_tenants = {}
if check then
  local policies = {}
  for i = 1, #scopes do
    local scope = scopes[i]
    local limit = redis.call('HGET', KEYS[1], 'limit:' .. scope)
    if limit then
      limit = tonumber(limit)
      local used = tonumber(redis.call('HGET', KEYS[3], scope) or '0')
      if used >= limit then
        local tn = owner[i]
        local hard = nil
        if tn then
          if policies[tn] == nil then
            policies[tn] = redis.call('HGET', KEYS[1], 'policy:' .. tn) or 'refuse'
          end
          if policies[tn] == 'surcharge' then
            hard = tonumber(redis.call('HGET', KEYS[1], 'hard:' .. scope) or limit)
          end
        end
        if hard and used < hard then
          sur[#sur + 1] = scope
          sur_tenants[tn] = true
        else
          return {0, reasons[i], scope, limit, used}
        end
      end
    end
  end
end

-- calls per second of the trunk: a token bucket holding at most one second of calls
local bucket_tokens, bucket_at
if trunk ~= '' and mode ~= 'restore' then
  local rate = redis.call('HGET', KEYS[1], 'cps:' .. trunk)
  if rate then
    rate = tonumber(rate)
    local cap = math.max(rate, 1)
    local b = redis.call('HMGET', KEYS[2], trunk .. '/tokens', trunk .. '/at')
    local tokens = tonumber(b[1] or cap)
    local at = tonumber(b[2] or now)
    if now > at then
      tokens = math.min(cap, tokens + (now - at) * rate / 1000)
      at = now
    end
    if tokens < 1 then
      if check then
        return {0, 'trunk_full', trunk, rate, 0}
      end
      bucket_tokens = 0  -- an emergency call passes an empty bucket
    else
      bucket_tokens = tokens - 1
    end
    bucket_at = at
  end
end

-- commit
for i = 1, #scopes do
  redis.call('HINCRBY', KEYS[3], scopes[i], 1)
end
for tn, _ in pairs(sur_tenants) do
  sur[#sur + 1] = 'tenant/' .. tn
end
for i = 1, #sur do
  redis.call('HINCRBY', KEYS[4], sur[i], 1)
end
if bucket_tokens then
  redis.call('HSET', KEYS[2], trunk .. '/tokens', tostring(bucket_tokens),
             trunk .. '/at', tostring(bucket_at))
end

local status = 'ok'
if mode == 'emergency' then
  status = 'emergency'
elseif mode == 'restore' then
  status = 'restored'
elseif #sur > 0 then
  status = 'surcharge'
end
local scope_list = table.concat(scopes, ' ')
local sur_list = table.concat(sur, ' ')
redis.call('HSET', KEYS[8], 'tenant', tenant, 'status', status, 'meta', ARGV[9],
           'created', ARGV[2])
redis.call('HSET', KEYS[7], lease_id, scope_list .. '|' .. sur_list)
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[3]), lease_id)
return {1, status, scope_list, sur_list}
