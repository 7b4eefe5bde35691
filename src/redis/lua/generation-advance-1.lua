--[[
  Takes a generation number above every one a queue's event state still carries, for a leader whose own number
  came from a counter that was lost (evicted or deleted) while the queue states kept theirs: INCR alone would
  hand out numbers those states refuse, one lease term (~11 s) per number, until it caught up.
  KEYS[1]  the generation counter (ownKeys.eventsGeneration)
  ARGV[1]  the highest generation a queue's state holds
  Returns the new generation: above ARGV[1] and above every number handed out before.
]]
local current = tonumber(redis.call('GET', KEYS[1])) or 0
local floor = tonumber(ARGV[1])
if current < floor then redis.call('SET', KEYS[1], floor) end
return redis.call('INCR', KEYS[1])
