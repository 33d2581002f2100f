-- Claim due leads of one campaign. Each candidate is taken only if it is still due and
-- not closed; it moves to the new state and its due score becomes a recovery deadline,
-- so a lead whose outcome is never recorded (gateway crash) becomes due again.
-- KEYS[1]    due zset of the campaign (member = lead id, score = epoch seconds)
-- KEYS[2..]  lead hashes, one per candidate, aligned with ARGV[6..]
-- ARGV[1]    now (epoch seconds)
-- ARGV[2]    new state ("dialing" or "offered")
-- ARGV[3]    recovery deadline (new due score)
-- ARGV[4]    most leads to claim
-- ARGV[5]    holder (the agent a lead is offered to; empty for dials)
-- ARGV[6..]  lead ids, aligned with KEYS[2..]
-- Returns {id, previous_state, id, previous_state, ...} for the leads claimed.
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[4])
local out = {}
local taken = 0
for i = 2, #KEYS do
  if taken >= limit then break end
  local id = ARGV[4 + i]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now then
    local state = redis.call('HGET', KEYS[i], 'state')
    if (not state) or state == 'done' or state == 'exhausted' or state == 'blocked' then
      redis.call('ZREM', KEYS[1], id)
    else
      redis.call('HSET', KEYS[i], 'state', ARGV[2], 'offered_to', ARGV[5],
                 'next_at', ARGV[3])
      redis.call('ZADD', KEYS[1], ARGV[3], id)
      out[#out + 1] = id
      out[#out + 1] = state
      taken = taken + 1
    end
  end
end
return out
