--[[
  Extends the leader lease, but only for the replica that holds it (compare-and-set).
  KEYS[1] lease key (ownKeys.leader)
  ARGV[1] the caller's lease token
  ARGV[2] lease duration in ms
  Returns 1 when renewed, 0 when the lease expired or another replica holds it.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
