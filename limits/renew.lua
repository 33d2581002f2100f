-- renew.lua: push back the deadline of leases whose calls are still up.
-- A lease that still exists is extended (never shortened); one already freed stays freed
-- and is reported gone, so a renewal can never resurrect or double-count a slot.
--
-- KEYS[1] deadlines  zset  lease id -> deadline ms
-- KEYS[2] holdings   hash  lease id -> what it holds (a lease exists while it has one)
--
-- ARGV[1] new deadline, epoch ms
-- ARGV[2..] lease ids
--
-- Returns one integer per lease: 1 extended, 0 gone.

local out = {}
for i = 2, #ARGV do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[i])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
