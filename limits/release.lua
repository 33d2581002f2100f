-- release.lua: free leases, each exactly once, giving back every scope they hold.
--
-- KEYS[1] used        hash  scope id -> calls holding it
-- KEYS[2] surcharged  hash  scope id and 'tenant/<T>' -> surcharged calls holding it
-- KEYS[3] deadlines   zset  lease id -> deadline ms
-- KEYS[4] released    zset  lease id -> release time ms (tombstones)
-- KEYS[5] holdings    hash  lease id -> 'scope ...|surcharged scope ...' (a lease exists
--                           while it has a holding)
-- KEYS[6..] lease hashes, one per lease id in ARGV[4..], same order
--
-- ARGV[1] now, epoch ms
-- ARGV[2] mode: 'release' free whatever the deadline (hangup, release hook, reconciliation)
--               'expire'  free only if the deadline is still <= now (a renewal wins)
-- ARGV[3] tombstones older than this (epoch ms) are dropped
-- ARGV[4..] lease ids
--
-- Returns one entry per lease:
--   {0}                                               nothing freed (already gone, or renewed)
--   {1, tenant, status, meta, scopes}   freed by this call (meta: 'call_id origin flag...')

local now = tonumber(ARGV[1])
local expire = (ARGV[2] == 'expire')
local out = {}

local function give_back(hash, list)
  for scope in string.gmatch(list, '%S+') do
    if redis.call('HINCRBY', hash, scope, -1) <= 0 then
      redis.call('HDEL', hash, scope)
    end
  end
end

for i = 4, #ARGV do
  local lease_id = ARGV[i]
  local key = KEYS[i + 2]
  local held = redis.call('HGET', KEYS[5], lease_id)
  local due = true
  if expire then
    local deadline = redis.call('ZSCORE', KEYS[3], lease_id)
    due = (not deadline) or tonumber(deadline) <= now
  end
  if held and due then
    local bar = string.find(held, '|', 1, true) or (#held + 1)
    local scopes = string.sub(held, 1, bar - 1)
    give_back(KEYS[1], scopes)
    give_back(KEYS[2], string.sub(held, bar + 1))
    local v = redis.call('HMGET', key, 'tenant', 'status', 'meta')
    redis.call('DEL', key)
    redis.call('HDEL', KEYS[5], lease_id)
    redis.call('ZREM', KEYS[3], lease_id)
    if not expire then
      -- the call ended: remember it, so reconciliation never counts it again. An expired
      -- lease gets no tombstone: its call may still be up, behind a gateway that lost Redis.
      redis.call('ZADD', KEYS[4], now, lease_id)
    end
    out[#out + 1] = {1, v[1] or '', v[2] or '', v[3] or '', scopes}
  else
    if not held and expire then
      -- a deadline with no lease behind it: drop it so the sweeper does not see it again
      redis.call('ZREM', KEYS[3], lease_id)
    end
    out[#out + 1] = {0}
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[3])
return out
