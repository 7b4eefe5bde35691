--[[
  Deletes the state of queues not seen for longer than the retention, unless a newer term claimed them
  (fencing by generation, see events-init-n.lua). The caller removes the deleted ones from the queue index.
  KEYS[i]    queue i's state hash (ownKeys.eventsQueue); all keys in one slot
  ARGV[1]    generation of the caller's term
  Returns 1 or 0 per queue: deleted or left alone.
]]
local gen = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local stored = tonumber(redis.call('HGET', KEYS[i], 'r|gen'))
  if stored and stored > gen then
    out[i] = 0
  else
    redis.call('DEL', KEYS[i])
    out[i] = 1
  end
end
return out
