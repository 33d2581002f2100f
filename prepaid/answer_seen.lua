-- answer_seen.lua: a gateway that is not the event owner of the call's Asterisk saw the
-- call answered: record where and when, so whichever gateway owns that Asterisk (now or
-- after a takeover) starts debiting from the real answer. Changes nothing else: no money
-- moves, a session already live or ended keeps its own answer time.
--
-- KEYS[1] session hash   callgate:{card:ID}:s:SID
--
-- ARGV[1] the call's Asterisk (recorded as `origin` when the session has none)
-- ARGV[2] answer, epoch ms (recorded while the session is still 'authorized')
--
-- Returns the session's state ('' when there is no such session).

local st = redis.call('HGET', KEYS[1], 'state')
if not st then
  return ''
end
if ARGV[1] ~= '' then
  redis.call('HSETNX', KEYS[1], 'origin', ARGV[1])
end
if st == 'authorized' then
  redis.call('HSETNX', KEYS[1], 'answer_ms', ARGV[2])
end
return st
