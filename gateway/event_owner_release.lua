-- event_owner_release.lua: give up the event ownership of one Asterisk on a clean
-- shutdown, so another gateway takes over at its next claim instead of after the TTL.
-- Only the holder's own lease (same gateway id and epoch) is deleted.
--
-- KEYS[1] callgate:{site:S}:event_owner:<asterisk>  string 'gateway_id epoch', TTL
--
-- ARGV[1] 'gateway_id epoch' as the claim left it
--
-- Returns 1 when deleted, 0 when the lease was no longer ours (expired or taken over).

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
