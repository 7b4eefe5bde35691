--[[
  Gives the leader lease up on shutdown, so a standby takes over at once instead of after expiry.
  KEYS[1] lease key (ownKeys.leader)
  ARGV[1] the caller's lease token
  Returns 1 when released, 0 when the caller did not hold it.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
