#!lua flags=no-writes
--[[
  Counts active jobs whose lock has expired, for one page of a queue's 'active' list. Used only for queues with
  more active jobs than get-queue-states checks inline, so every call stays small.

  Input:
    KEYS[1]   '<prefix>:<queue>:active'
    ARGV[1]   '<prefix>:<queue>:'   key base (job keys are built from it)
    ARGV[2]   first index (inclusive; negative counts from the right end)
    ARGV[3]   last index (inclusive)

  Output: number of ids in the page whose '<base><id>:lock' key does not exist.
]]
local ids = redis.call('LRANGE', KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
local orphans = 0
for i = 1, #ids do
  if redis.call('PTTL', ARGV[1] .. ids[i] .. ':lock') == -2 then orphans = orphans + 1 end
end
return orphans
