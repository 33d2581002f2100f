-- Import a batch of leads into one campaign. A lead already there (same E.164 number) is
-- merged: non-empty extra columns are updated, its state and attempts are kept.
-- KEYS[1]    due zset of the campaign
-- KEYS[2]    counts hash of the campaign (field "leads")
-- KEYS[3..]  lead hashes, aligned with ARGV[1..]
-- ARGV[i]    JSON {"p": e164, "tz": "Zone[,Zone]", "l": csv line, "d": due epoch,
--                  "x": {column: value}}
-- Returns one integer per lead: 0 = imported as new, otherwise the CSV line of the lead
-- it was merged into (-1 if unknown).
local out = {}
local added = 0
for i = 3, #KEYS do
  local lead = cjson.decode(ARGV[i - 2])
  local key = KEYS[i]
  if redis.call('EXISTS', key) == 1 then
    local args = {}
    for k, v in pairs(lead.x) do
      if v ~= '' then
        args[#args + 1] = 'x:' .. k
        args[#args + 1] = v
      end
    end
    if #args > 0 then redis.call('HSET', key, unpack(args)) end
    out[#out + 1] = tonumber(redis.call('HGET', key, 'line') or '') or -1
  else
    local args = {'phone', lead.p, 'tz', lead.tz, 'state', 'pending', 'attempts', 0,
                  'line', lead.l, 'next_at', lead.d}
    for k, v in pairs(lead.x) do
      args[#args + 1] = 'x:' .. k
      args[#args + 1] = v
    end
    redis.call('HSET', key, unpack(args))
    redis.call('ZADD', KEYS[1], lead.d, lead.p)
    added = added + 1
    out[#out + 1] = 0
  end
end
if added > 0 then redis.call('HINCRBY', KEYS[2], 'leads', added) end
return out
