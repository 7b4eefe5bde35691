--[[
  Deletes the state of queues not seen for longer than the retention, fenced by the leader lease.
  KEYS[1]    lease key (ownKeys.leader)
  KEYS[2]    queue index sorted set (ownKeys.eventsIndex)
  KEYS[2+i]  queue i's state hash, i = 1..n
  ARGV[1]    lease token
  ARGV[2]    retention in ms
  ARGV[2+i]  queue i's index member
  Returns false when the caller no longer holds the lease, else how many queues were forgotten.
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[2])
local forgotten = 0
for i = 3, #KEYS do
  local score = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[i]))
  if score and score <= cutoff then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    forgotten = forgotten + 1
  end
end
return forgotten
