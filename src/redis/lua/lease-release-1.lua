--[[
  Gives a lease up only if the caller still holds it: the leader lease on shutdown (so a standby takes over at once
  instead of after expiry), a dead letter's redrive claim when its redrive ends (never a successor's claim).
  KEYS[1] lease key (ownKeys.leader, ownKeys.redriveClaim)
  ARGV[1] the caller's lease token
  Returns 1 when released, 0 when the caller did not hold it.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
