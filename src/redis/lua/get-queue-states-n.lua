--[[
  Reads the state of a group of BullMQ queues in one read-only call. Used by the collector; the group size is
  chosen by the caller so that one call stays well under a millisecond of Redis time.

  Input:
    KEYS[i]   '<prefix>:<queue>:'   key base of queue i (every key of a BullMQ queue starts with it)
    ARGV[1]   maximum number of active job ids per queue whose lock is checked in this call

  Output: { nowMs, q1, q2, ... } where each qi is the flat array
    { metaExists, paused, waiting, active, prioritized, delayed, waitingChildren, completed, failed,
      delayedOverdue, headEligibleMs, oldestActiveStartMs, orphanedActive, activeLocksChecked,
      limiterPttl, limiterCount, globalRateMax }
    Times are Redis-clock milliseconds (TIME) except job hash fields, which are producer/worker clocks.
    -1 stands for "none".
]]
local rcall = redis.call
local t = rcall('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local activeLimit = tonumber(ARGV[1])
-- Delayed scores are dueMs * 4096 + seq (BullMQ getDelayedScore.lua): due before now <=> score < now * 4096.
local overdueMax = '(' .. string.format('%.0f', nowMs * 4096)

-- Eligible time of a waiting job: enqueue time plus its own delay; a retried job became eligible no earlier
-- than the start of its last attempt.
local function eligibleMs(base, jobId)
  local h = rcall('HMGET', base .. jobId, 'timestamp', 'processedOn', 'opts')
  local ts = tonumber(h[1])
  if not ts then return -1 end
  local eligible = ts
  if h[3] then
    local ok, opts = pcall(cjson.decode, h[3])
    if ok and type(opts) == 'table' and tonumber(opts['delay']) then eligible = ts + tonumber(opts['delay']) end
  end
  local processedOn = tonumber(h[2])
  if processedOn and processedOn > eligible then eligible = processedOn end
  return eligible
end

local out = { nowMs }
for i = 1, #KEYS do
  local b = KEYS[i]
  local metaExists = rcall('EXISTS', b .. 'meta')
  local meta = rcall('HMGET', b .. 'meta', 'paused', 'max')
  -- v6 keeps a paused queue's jobs in 'wait'; 'paused' is only non-empty for queues last written by v5.
  local waiting = rcall('LLEN', b .. 'wait') + rcall('LLEN', b .. 'paused')
  local active = rcall('LLEN', b .. 'active')
  local prioritized = rcall('ZCARD', b .. 'prioritized')

  local headEligible = -1
  local headId = rcall('LINDEX', b .. 'wait', -1)
  if not headId then
    local p = rcall('ZRANGE', b .. 'prioritized', 0, 0)
    headId = p[1]
  end
  if headId then headEligible = eligibleMs(b, headId) end

  -- Workers LPUSH into 'active' when they take a job, so the right end is the longest-running one.
  local oldestActive = -1
  local tailId = rcall('LINDEX', b .. 'active', -1)
  if tailId then oldestActive = tonumber(rcall('HGET', b .. tailId, 'processedOn')) or -1 end

  local orphans = 0
  local checked = 0
  if active > 0 and activeLimit > 0 then
    local ids = rcall('LRANGE', b .. 'active', 0, activeLimit - 1)
    checked = #ids
    for j = 1, #ids do
      if rcall('PTTL', b .. ids[j] .. ':lock') == -2 then orphans = orphans + 1 end
    end
  end

  out[#out + 1] = {
    metaExists,
    meta[1] and 1 or 0,
    waiting,
    active,
    prioritized,
    rcall('ZCARD', b .. 'delayed'),
    rcall('ZCARD', b .. 'waiting-children'),
    rcall('ZCARD', b .. 'completed'),
    rcall('ZCARD', b .. 'failed'),
    rcall('ZCOUNT', b .. 'delayed', '-inf', overdueMax),
    headEligible,
    oldestActive,
    orphans,
    checked,
    rcall('PTTL', b .. 'limiter'),
    tonumber(rcall('GET', b .. 'limiter')) or 0,
    tonumber(meta[2]) or -1,
  }
end
return out
