--[[
  Restarts the event state of a queue whose events stream no longer exists (obliterate() deleted it): cursor
  '0-0' and nothing seen, so that a queue re-created under the same name is read from its first entry and
  whatever its new stream trims before it is read is counted lost exactly, instead of being offset by the
  entries the old stream had. Counters and histograms stay (they are cumulative). Fenced by generation
  (events-init-n.lua). Called by the event reader when it stops following a queue.

  Input:
    KEYS[1]   the queue's state hash (ownKeys.eventsQueue)
    ARGV[1]   generation of the caller's term
    ARGV[2]   the queue's events stream (<prefix>:<queue>:events), an argument: the sidecar only reads BullMQ's keys
  Output: 1 when the state was restarted, 0 when the stream exists or another term owns the state.
]]
if redis.call('HGET', KEYS[1], 'r|gen') ~= ARGV[1] then return 0 end
if redis.call('EXISTS', ARGV[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'r|cursor', '0-0', 'r|seen', 0)
return 1
