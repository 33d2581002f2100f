-- fail_counter.lua: count a failed PIN and lock out after too many in a window.
-- Used with the keys of one card ({card:ID}) or of one caller id ({caller:NUM}).
--
-- KEYS[1] failure counter   (expires with the window)
-- KEYS[2] lock key          (present while locked out)
--
-- ARGV[1] window, ms
-- ARGV[2] failures that lock
-- ARGV[3] lock-out, ms
--
-- Returns {failures, locked 0|1}

local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
if n >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return {n, 1}
end
return {n, 0}
