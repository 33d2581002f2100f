-- recount.lua: rebuild the in-use and surcharged counters from the leases that exist.
-- One atomic pass over the holdings index (lease id -> its scopes), so calls starting and
-- ending meanwhile can never make it miscount, however busy the site.
--
-- KEYS[1] used        hash  scope id -> calls holding it
-- KEYS[2] surcharged  hash  scope id and 'tenant/<T>' -> surcharged calls holding it
-- KEYS[3] deadlines   zset  lease id -> deadline ms
-- KEYS[4] holdings    hash  lease id -> 'scope scope ...|surcharged scope ...'
--
-- Returns the fixes, each {counter, scope or lease id, was, now}:
--   {'used'|'surcharged', scope, was, now}  a counter that had drifted from its leases
--   {'dangling', lease id, 1, 0}            a deadline with no lease behind it, dropped
--   {'no_deadline', lease id, 0, 1}         a lease with no deadline, given one due now

local want = {used = {}, surcharged = {}}
local out = {}
local seen = {}

local flat = redis.call('HGETALL', KEYS[4])
for i = 1, #flat, 2 do
  local lease_id, rec = flat[i], flat[i + 1]
  seen[lease_id] = true
  local bar = string.find(rec, '|', 1, true) or (#rec + 1)
  for scope in string.gmatch(string.sub(rec, 1, bar - 1), '%S+') do
    want.used[scope] = (want.used[scope] or 0) + 1
  end
  for scope in string.gmatch(string.sub(rec, bar + 1), '%S+') do
    want.surcharged[scope] = (want.surcharged[scope] or 0) + 1
  end
  if not redis.call('ZSCORE', KEYS[3], lease_id) then
    redis.call('ZADD', KEYS[3], 0, lease_id)  -- the sweeper frees it unless it is renewed
    out[#out + 1] = {'no_deadline', lease_id, 0, 1}
  end
end
for _, lease_id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  if not seen[lease_id] then
    redis.call('ZREM', KEYS[3], lease_id)
    out[#out + 1] = {'dangling', lease_id, 1, 0}
  end
end

local function fix(name, key, wanted)
  local have = {}
  local counts = redis.call('HGETALL', key)
  for i = 1, #counts, 2 do
    have[counts[i]] = tonumber(counts[i + 1]) or -1  -- garbage is always rewritten
  end
  for scope, n in pairs(have) do
    local w = wanted[scope] or 0
    if n ~= w then
      if w == 0 then
        redis.call('HDEL', key, scope)
      else
        redis.call('HSET', key, scope, w)
      end
      out[#out + 1] = {name, scope, n, w}
    end
  end
  for scope, w in pairs(wanted) do
    if have[scope] == nil then
      redis.call('HSET', key, scope, w)
      out[#out + 1] = {name, scope, 0, w}
    end
  end
end

fix('used', KEYS[1], want.used)
fix('surcharged', KEYS[2], want.surcharged)
return out
