-- Take or renew the right to pace one campaign (one gateway at a time).
-- KEYS[1]  lease key of the campaign
-- ARGV[1]  owner id (this gateway's runner)
-- ARGV[2]  time to live, milliseconds
-- Returns 1 if the caller holds the lease now, 0 if another owner does.
local current = redis.call('GET', KEYS[1])
if (not current) or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
