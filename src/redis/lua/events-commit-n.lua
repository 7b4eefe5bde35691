--[[
  Persists one read batch atomically, fenced by the term generation: the accounting fields the batch changed,
  each stream's cursor, and the exact count of entries trimmed away before they were read.
  Loss: entries-added (XINFO, Redis 7) counts every entry ever written; `r|seen` counts those read or already
  counted lost. With U = retained entries after the cursor (0 when caught up, the stream length when the
  oldest retained entry is past the cursor), lost = entries-added - seen - U. When U is unknown (still
  behind, nothing trimmed past the cursor yet) the count waits for a later batch.
  Lag: the age of the oldest unread entry (0 when caught up) is stored with the commit time (Redis clock) and
  the grace the leader allows itself between heartbeats (an idle queue is not committed again; its shard's
  heartbeat vouches for it), so that every replica can age the value by itself: a reader that stops committing
  and beating shows a growing lag instead of its last value.
  Fenced by generation (see events-init-n.lua): writes only while each hash still carries the caller's.
  Compare-and-set on the cursor: a Cluster failover can promote a replica that never received the last
  commits (replication is asynchronous), nor the stream entries behind them. The caller's memory is then
  ahead of Redis; writing it would count entries the stream no longer has. The script refuses with an
  error, and the caller reloads the queues from what Redis holds and reads on from there.
  KEYS[i]          queue i's state hash (ownKeys.eventsQueue), i = 1..n; all in one slot with the streams
  ARGV[1]          generation of the caller's term
  ARGV[2]          grace (ms): how late the next commit (or the shard's heartbeat) of a caught-up queue may be
                   before it counts as lag; stored only by a queue's commit that applies nothing (see below: one that
                   applies entries stores 0 and no heartbeat)
  ARGV[3]          the field of the events meta hash holding the heartbeat of the caller's shard, stored with
                   each queue so that read-back ages a caught-up queue's lag from the later of the two
  then per queue:  its events stream (an argument, not a key: see events-init-n.lua), cursor the caller last
                   committed or loaded, cursor (last applied id), number of entries applied (0: only refresh
                   the lag), number of field/value args F, F args
  Returns false when a newer term has claimed one of the queues, else per queue three numbers: the entries newly
  counted lost; 1 when the stream held nothing past the cursor (caught up: the caller need not commit the queue
  again to settle its lag while the stream stays idle), else 0; and the stream's length (-1: no stream), which
  tells the caller how many entries it may leave unread for a while before trimming takes them.
]]
local n = #KEYS
local a = 4

--[[
  A busy queue's hash (a few dozen fields: counters and histogram buckets) is made a hash table once it holds WIDE
  fields before a commit that writes at least 8 (a queue writing fewer finds them cheaply anyway). Redis keeps a
  hash of up to hash-max-listpack-entries fields (128 to 512) as a listpack, where every field written is found by a
  scan from its start: with ~50 fields that scan was a third of this script's instructions (callgrind), and a hash
  table finds a field at once. Redis makes a hash a table when one of its values is longer than
  hash-max-listpack-value (64 bytes unless configured), and keeps it one (a restart loads it as one too), so such a
  hash gets the field `x|table` with a value of 65 bytes (HSETNX: written once; read-back takes only c|, h| and r|
  fields). Nothing else is asked of Redis: no OBJECT, no HDEL, which the sidecar's least-privilege ACL user is not
  given. Where hash-max-listpack-value is set higher, the hash stays a listpack, as before. It costs Redis memory:
  about twice the listpack's (MEMORY USAGE of 50 fields: 1.8 KB as a listpack, 3.8 KB as a table), some 2 KB more
  per busy queue. HGETALL (the read-back) costs no more: a fifth fewer instructions on the table.
]]
local WIDE = 32
local TABLE_VALUE = string.rep('-', 65)
for i = 1, n do
  local hash = KEYS[i]
  if redis.call('HGET', hash, 'r|gen') ~= ARGV[1] then return false end
  if redis.call('HGET', hash, 'r|cursor') ~= ARGV[a + 1] then
    return redis.error_reply('ROLLEDBACK event state of ' .. hash .. ' is behind the reader (failover lost writes)')
  end
  a = a + 5 + tonumber(ARGV[a + 4])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function parseId(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function after(a, b)
  local am, as = parseId(a)
  local bm, bs = parseId(b)
  return am > bm or (am == bm and as > bs)
end

local out = {}
a = 4
for i = 1, n do
  local hash, stream = KEYS[i], ARGV[a]
  local cursor, applied, nf = ARGV[a + 2], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  a = a + 5
  -- Before this queue's fields are written, and in pcall: a server that refuses either command (an ACL other than the
  -- documented one) leaves the hash as it was and the commit whole (a refusal after the fields would leave them
  -- written without their cursor: read again and counted twice).
  if nf >= 16 then
    local ok, len = pcall(redis.call, 'HLEN', hash)
    if ok and len >= WIDE then pcall(redis.call, 'HSETNX', hash, 'x|table', TABLE_VALUE) end
  end
  -- HSET in slices: unpack() is bounded by the Lua C stack.
  local j = 0
  while j < nf do
    local k = math.min(nf - j, 1000)
    redis.call('HSET', hash, unpack(ARGV, a + j, a + j + k - 1))
    j = j + k
  end
  a = a + nf
  redis.call('HSET', hash, 'r|cursor', cursor)
  local seen = redis.call('HINCRBY', hash, 'r|seen', applied)
  local lost, lag, caughtUp, length = 0, 0, 0, -1
  local r = redis.pcall('XINFO', 'STREAM', stream)
  if type(r) == 'table' and not r.err then
    local s = {}
    for x = 1, #r, 2 do s[r[x]] = r[x + 1] end
    length = s['length']
    local unread
    if s['last-generated-id'] == cursor or s['length'] == 0 then
      unread = 0
      caughtUp = 1
    elseif after(s['recorded-first-entry-id'], cursor) then
      unread = s['length']
      lag = now - parseId(s['recorded-first-entry-id'])
    else
      lag = now - parseId(cursor)
      -- More seen than this stream ever had: it was deleted and re-created (obliterate) and the reader is reading
      -- the new one, not caught up. Counted now, while `seen` still tells: left for a later batch, whose applied
      -- entries are only its own, the re-created case below would count this batch's entries as lost too. Rare, so
      -- the entries past the cursor are counted one by one (at most what the stream retains).
      if seen > s['entries-added'] then unread = #redis.call('XRANGE', stream, '(' .. cursor, '+') end
    end
    if unread then
      lost = s['entries-added'] - seen - unread
      if lost > 0 then
        redis.call('HINCRBY', hash, 'r|lost', lost)
        redis.call('HINCRBY', hash, 'r|seen', lost)
      elseif lost < 0 then
        -- The stream was deleted and re-created (obliterate) while the reader followed it: what this batch
        -- applied came from the new stream, so what it holds beyond that and the unread rest was trimmed
        -- unseen. (When the reader stopped following the queue first, events-restart-1.lua reset the state.)
        lost = math.max(0, s['entries-added'] - applied - unread)
        if lost > 0 then redis.call('HINCRBY', hash, 'r|lost', lost) end
        redis.call('HSET', hash, 'r|seen', s['entries-added'] - unread)
      end
    end
  end
  -- A commit that applied entries leaves its queue open: its stream keeps moving, and what comes next may wait for
  -- the caller's pace (left unread, or read and not committed yet) while the shard's heartbeat goes on. Its lag then
  -- ages from this commit, with no grace and no heartbeat, so it covers every event the stored counters miss; the
  -- caller's next commit of the queue that applies nothing (its stream found at its end) vouches for it again.
  local grace, hb = ARGV[2], ARGV[3]
  if applied > 0 then grace, hb = 0, '' end
  redis.call('HSET', hash, 'r|lag_ms', math.max(0, lag), 'r|commit_ms', now, 'r|grace_ms', grace, 'r|hb', hb)
  out[3 * i - 2] = lost
  out[3 * i - 1] = caughtUp
  out[3 * i] = length
end
return out
