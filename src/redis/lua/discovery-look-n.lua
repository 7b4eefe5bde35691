#!lua flags=no-writes
--[[
  Discovery's looks at the keys of queues it already knows, instead of a SCAN of the whole keyspace (standalone
  Redis only; collector/discovery.ts and redis/stream-proof.ts say when each is used).

  Input:
    KEYS[i]   mode 'added' or 'length': the events stream of queue i; mode 'meta': its meta hash
    ARGV[1]   'added'  : each stream's entries-added (XINFO STREAM, Redis >= 7), read in the same atomic step as
                         this server's run_id and its count of XADD calls (INFO commandstats, which counts the
                         XADDs of scripts and transactions too): nothing runs between them
              'length' : each stream's XLEN
              'meta'   : 1 when BullMQ's fields are in the meta hash (opts.maxLenEvents or version, as discovery
                         confirms a queue), else 0

  Output: one string 'runId;xaddCalls;v1,v2,...' (runId and xaddCalls empty unless 'added'). A value is -1 when
  the key is not what the mode reads (another type; a stream without entries-added, Redis < 7); a stream that
  does not exist is 0 ('added': nothing was ever added to it since it was last created).
]]
local rcall = redis.call
local mode = ARGV[1]
local values = {}

local function streamValue(key)
  if mode == 'length' then
    local ok, n = pcall(rcall, 'XLEN', key)
    return ok and n or -1
  end
  local ok, info = pcall(rcall, 'XINFO', 'STREAM', key)
  if not ok then
    return rcall('EXISTS', key) == 0 and 0 or -1
  end
  for j = 1, #info, 2 do
    if info[j] == 'entries-added' then return info[j + 1] end
  end
  return -1
end

for i = 1, #KEYS do
  if mode == 'meta' then
    local ok, h = pcall(rcall, 'HMGET', KEYS[i], 'opts.maxLenEvents', 'version')
    values[i] = (ok and (h[1] or h[2])) and 1 or 0
  else
    values[i] = streamValue(KEYS[i])
  end
end

local runId, xadds = '', ''
if mode == 'added' then
  runId = string.match(rcall('INFO', 'server'), 'run_id:(%x+)') or ''
  xadds = string.match(rcall('INFO', 'commandstats'), 'cmdstat_xadd:calls=(%d+)') or '0'
end
return runId .. ';' .. xadds .. ';' .. table.concat(values, ',')
