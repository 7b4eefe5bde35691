#!lua flags=no-writes
--[[
  Reads the state of a group of BullMQ queues in one read-only call. Used by the collector; the group size and
  the lock-check budget are chosen by the caller so that one call stays well under a millisecond of Redis time.
  Every redis.call costs about a microsecond here, so commands whose answer is already known (a count of
  zero, a limiter without TTL, a queue that is not paused) are skipped. Numbers are formatted as integers
  (string.format('%d')), and redis.call gets none: Redis 7.0 writes each number argument with '%.17g', and
  Lua's own tostring and table.concat use '%.14g', glibc's float printer, which was a fifth of this script's
  instructions (callgrind); integer formatting is a fraction of that.

  Input:
    KEYS[i]   '<prefix>:<queue>:'   key base of queue i (every key of a BullMQ queue starts with it)
    ARGV[1]   how many active job locks this call may check, over all its queues; the caller pages the rest

  Output: one string 'nowMs;q1;q2;...' where each qi is the comma-separated list
      metaExists,paused,waiting,active,prioritized,delayed,waitingChildren,completed,failed,
      delayedOverdue,headEligibleMs,oldestActiveStartMs,orphanedActive,activeLocksChecked,
      limiterPttl,limiterCount,globalRateMax,lockOwners,nextDueMs,lockExpiresMs
    One string rather than nested arrays: the client parses one value per group instead of 17 per queue,
    which was a third of the collector's client CPU. Numbers are written with Lua's %.14g, exact for
    millisecond timestamps and counts. Times are Redis-clock milliseconds (TIME) except job hash fields,
    which are producer/worker clocks. -1 stands for "none".
    A queue that cannot be read (a key of the wrong type, say) is the single character '!' instead, and only
    that queue is skipped by the caller.
  Numbers read from Redis strings go through num(): Lua's tonumber accepts 'inf', '1e400', 'nan' and '0x1F',
  and one 'inf' written as %.14g would be a field no client parses (BullMQ stores setGlobalRateLimit(Infinity)
  as 'Infinity'). Every field is clamped to +-(2^53 - 1) on the way out, so a reply holds finite integers only.
    lockOwners: distinct workers holding the checked locks (a lock's value is `<worker token>:<n>`); a worker
    whose CLIENT SETNAME Redis refused (a name with a space or non-ASCII) is still seen while it runs a job.
    nextDueMs: the due time of the earliest delayed job not yet overdue (-1: none), so a caller holding this
    reading knows, from the clock alone, when delayedOverdue changes without any event.
    lockExpiresMs: the earliest a checked lock can expire with no event (now + its PTTL, should its worker die
    now; -1: no live lock with a TTL; now when not every active job's lock was checked), so a caller knows how
    long the active jobs cannot turn into orphans unseen.
]]
local rcall = redis.call
local LIMIT = 9007199254740991

-- A number from a Redis string: nil when it is not one or is NaN; +-inf and huge values clamped to +-LIMIT.
local function num(v)
  local x = tonumber(v)
  if x == nil or x ~= x then return nil end
  if x > LIMIT then return LIMIT end
  if x < -LIMIT then return -LIMIT end
  return x
end

-- A field of the reply: a finite integer, as text (NaN, which no arithmetic here should produce, becomes -1 "none";
-- a fraction, which only a number written by hand into a BullMQ key can bring, is cut toward zero by '%d').
local function field(x)
  if x ~= x then return '-1' end
  if x > LIMIT then x = LIMIT end
  if x < -LIMIT then x = -LIMIT end
  return string.format('%d', x)
end
local t = rcall('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lockBudget = tonumber(ARGV[1])
-- Delayed scores are dueMs * 4096 + seq (BullMQ getDelayedScore.lua): due before now <=> score < now * 4096.
local overdueMax = '(' .. string.format('%.0f', nowMs * 4096)

-- Eligible time of a waiting job: enqueue time plus its own delay. A retried job became eligible when its backoff
-- ended: BullMQ resets the hash's delay on promotion, so the backoff is recomputed from opts.backoff and the number
-- of attempts made (fixed: delay; exponential: 2^(attempts-1) * delay, as BullMQ's backoffs.js), counted from the
-- start of the failed attempt. That overstates the age by the failed attempt's duration, never by the backoff.
local function backoffMs(opts, attemptsMade)
  local b = opts['backoff']
  if num(b) then return num(b) end
  if type(b) ~= 'table' or not num(b['delay']) then return 0 end
  if b['type'] == 'exponential' then return math.floor(math.min(2 ^ (attemptsMade - 1) * num(b['delay']), LIMIT) + 0.5) end
  if b['type'] == 'fixed' then return num(b['delay']) end
  return 0 -- a custom strategy: unknown here
end

local MAX_CHILDREN = 64

-- A job that ran before (processedOn) became eligible again when its backoff ended, or when it was moved back.
local function eligibleAfterRun(eligible, processedOn, attemptsMade, opts)
  if processedOn and attemptsMade > 0 then
    local retryEligible = processedOn + (opts and backoffMs(opts, attemptsMade) or 0)
    if retryEligible > eligible then eligible = retryEligible end
  elseif processedOn and processedOn > eligible then
    eligible = processedOn
  end
  return eligible
end

local function eligibleMs(base, jobId)
  local h = rcall('HMGET', base .. jobId, 'timestamp', 'processedOn', 'opts', 'atm')
  local ts = num(h[1])
  if not ts then return -1 end
  local eligible = ts
  local attemptsMade = math.max(0, math.min(num(h[4]) or 0, 1024))
  local processedOn = num(h[2])
  -- Decoding JSON costs more than the search that rules it out for jobs never delayed nor retried.
  local opts = nil
  if h[3] and (string.find(h[3], '"delay"', 1, true) or (attemptsMade > 0 and string.find(h[3], '"backoff"', 1, true))) then
    local ok, decoded = pcall(cjson.decode, h[3])
    if ok and type(decoded) == 'table' then opts = decoded end
  end
  if opts and num(opts['delay']) then eligible = ts + num(opts['delay']) end
  -- A flow parent became ready when its last child finished, not when it was created: the children it waited
  -- for are the fields of its ':processed' (and, when ignored on failure, ':failed') hashes. Up to
  -- MAX_CHILDREN are looked at; a child already removed tells nothing.
  -- Most jobs are no parent: one EXISTS of both hashes tells.
  local job = base .. jobId
  if rcall('EXISTS', job .. ':processed', job .. ':failed') == 0 then return eligibleAfterRun(eligible, processedOn, attemptsMade, opts) end
  for _, suffix in ipairs({ ':processed', ':failed' }) do
    local key = job .. suffix
    local n = rcall('HLEN', key)
    if n > 0 and n <= MAX_CHILDREN then
      local children = rcall('HKEYS', key)
      for j = 1, #children do
        -- pcall: on a Cluster a child in another slot cannot be read from here (it then tells nothing).
        local finished = num(redis.pcall('HGET', children[j], 'finishedOn'))
        if finished and finished > eligible then eligible = finished end
      end
    end
  end
  return eligibleAfterRun(eligible, processedOn, attemptsMade, opts)
end

-- One queue's fields, comma-separated; raises when a key has the wrong type.
local function readQueue(b)
  -- BullMQ writes opts.maxLenEvents or version into every queue's meta (discovery checks the same fields);
  -- neither left means the queue was obliterated.
  local meta = rcall('HMGET', b .. 'meta', 'paused', 'max', 'opts.maxLenEvents', 'version')
  local metaExists = (meta[3] or meta[4]) and 1 or 0
  local paused = meta[1] and 1 or 0
  -- The next job to run is the right end of 'wait'; an empty list answers nil there and needs no LLEN.
  local headId = rcall('LINDEX', b .. 'wait', '-1')
  local waiting = headId and rcall('LLEN', b .. 'wait') or 0
  -- v6 keeps a paused queue's jobs in 'wait'; v5 renamed 'wait' to 'paused' on pause (and set meta paused),
  -- so only a paused queue last written by v5 can have jobs there.
  if paused == 1 then
    waiting = waiting + rcall('LLEN', b .. 'paused')
    if not headId then headId = rcall('LINDEX', b .. 'paused', '-1') end
  end
  local prioritized = rcall('ZCARD', b .. 'prioritized')
  local delayed = rcall('ZCARD', b .. 'delayed')

  local headEligible = -1
  if not headId and prioritized > 0 then headId = rcall('ZRANGE', b .. 'prioritized', '0', '0')[1] end
  if headId then headEligible = eligibleMs(b, headId) end

  -- The ids whose locks are checked come with the count: LLEN only when that page is full or the budget spent.
  local active
  local ids = {}
  if lockBudget > 0 then
    ids = rcall('LRANGE', b .. 'active', '0', string.format('%d', lockBudget - 1))
    active = #ids
    if active == lockBudget then active = rcall('LLEN', b .. 'active') end
  else
    active = rcall('LLEN', b .. 'active')
  end

  local oldestActive = -1
  local orphans = 0
  local checked = #ids
  local owners = 0
  local lockExpires = -1
  if checked < active then lockExpires = nowMs end
  if active > 0 then
    lockBudget = lockBudget - checked
    local seen = {}
    for j = 1, checked do
      local lock = rcall('GET', b .. ids[j] .. ':lock')
      if not lock then
        orphans = orphans + 1
      else
        local pttl = rcall('PTTL', b .. ids[j] .. ':lock')
        if pttl > 0 and (lockExpires < 0 or nowMs + pttl < lockExpires) then lockExpires = nowMs + pttl end
        local owner = string.match(lock, '^(.*):[^:]*$') or lock
        if not seen[owner] then
          seen[owner] = true
          owners = owners + 1
        end
      end
    end
    -- Workers LPUSH into 'active' when they take a job, so the right end is the longest-running one.
    local tailId = checked >= active and checked > 0 and ids[checked] or rcall('LINDEX', b .. 'active', '-1')
    if tailId then oldestActive = num(rcall('HGET', b .. tailId, 'processedOn')) or -1 end
  end

  local overdue = delayed > 0 and rcall('ZCOUNT', b .. 'delayed', '-inf', overdueMax) or 0
  local nextDue = -1
  if delayed > overdue then
    -- The earliest job not overdue is ranked right after the overdue ones.
    local rank = string.format('%d', overdue)
    local first = rcall('ZRANGE', b .. 'delayed', rank, rank, 'WITHSCORES')
    local score = num(first[2])
    if score then nextDue = math.floor(score / 4096) end
  end

  local limiterPttl = rcall('PTTL', b .. 'limiter')
  local limiterCount = 0
  if limiterPttl > 0 then limiterCount = num(rcall('GET', b .. 'limiter')) or 0 end

  local fields = {
    metaExists,
    paused,
    waiting,
    active,
    prioritized,
    delayed,
    rcall('ZCARD', b .. 'waiting-children'),
    rcall('ZCARD', b .. 'completed'),
    rcall('ZCARD', b .. 'failed'),
    overdue,
    headEligible,
    oldestActive,
    orphans,
    checked,
    limiterPttl,
    limiterCount,
    num(meta[2]) or -1,
    owners,
    nextDue,
    lockExpires,
  }
  for j = 1, #fields do fields[j] = field(fields[j]) end
  return table.concat(fields, ',')
end

local out = { string.format('%d', nowMs) }
for i = 1, #KEYS do
  local ok, row = pcall(readQueue, KEYS[i])
  out[#out + 1] = ok and row or '!'
end
return table.concat(out, ';')
