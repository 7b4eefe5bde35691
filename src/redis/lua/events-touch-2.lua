--[[
  Marks queues as still present (retention of the reader's state), fenced by the leader lease.
  KEYS[1] lease key (ownKeys.leader)
  KEYS[2] queue index sorted set (ownKeys.eventsIndex)
  ARGV[1] lease token
  ARGV[2..] index members of the queues discovery sees now
  Returns 0 when the caller no longer holds the lease, else 1.
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do redis.call('ZADD', KEYS[2], now, ARGV[i]) end
return 1
