-- cdr_append.lua: append one CDR to the global stream exactly once.
-- Entry ids are >= the call's end time and never go backwards, so an export by end-time
-- range can start reading at the range's start and miss nothing, even for CDRs relayed
-- late (a gateway restarted after a crash).
--
-- KEYS[1] stream        callgate:{cdr}:stream
-- KEYS[2] relayed ids   callgate:{cdr}:ids   session id -> entry ms
--
-- ARGV[1] session id
-- ARGV[2] call end, epoch ms
-- ARGV[3] CDR JSON
-- ARGV[4] remember relayed ids this long, ms
--
-- Returns the entry id, or 0 when this session's CDR is already in the stream.

if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
local ms = tonumber(ARGV[2])
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  local lm = tonumber(string.match(last[1][1], '^(%d+)'))
  if lm > ms then
    ms = lm
  end
end
local id = redis.pcall('XADD', KEYS[1], string.format('%d-*', ms), 'cdr', ARGV[3])
if type(id) == 'table' and id.err then
  -- the stream's last id is past every remaining entry (trimmed): let Redis pick
  id = redis.call('XADD', KEYS[1], '*', 'cdr', ARGV[3])
  ms = tonumber(string.match(id, '^(%d+)'))
end
redis.call('ZADD', KEYS[2], ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%d', ms - tonumber(ARGV[4])))
return id
