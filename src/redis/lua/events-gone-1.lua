#!lua flags=no-writes
--[[
  Which tracked jobs no longer exist, and how far the stream was written when that was true: one atomic look,
  so the event reader can tell a ghost (a job drain(), clean() or obliterate() removed without a per-job event)
  from a job whose `removed`/`completed` entry it has not read yet. Used by events/event-reader.ts.

  Input:
    KEYS[1]   '<prefix>:<queue>:events'
    ARGV[1]   '<prefix>:<queue>:'   key base (job keys are built from it)
    ARGV[2..] job ids

  Output: { last-generated-id of the stream ('0-0' when it does not exist), then per id 1 (gone) or 0 }.
]]
local last = '0-0'
local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[1])
if ok and type(info) == 'table' then
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
local out = { last }
for i = 2, #ARGV do
  out[i] = redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 1 and 0 or 1
end
return out
