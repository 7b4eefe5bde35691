--[[
  Claims queues for the caller's term and gives queues without event state their starting cursor.
  Fencing: every state hash carries `r|gen`, the generation of the last term that claimed it. A claim with a
  lower generation than the stored one is refused, and the commit and forget scripts write only for the
  generation stored, so a leader that was paused past its lease cannot write after a newer term claimed the
  queue. The check lives in the queue's own hash (not in the lease key) because on Redis Cluster one script
  may only touch keys of one slot, and the lease key sits in another.
  A queue first claimed after this reader watched its prefix (ARGV[2+n+i] = 1: it was born, or appeared,
  since) is read from the oldest entry its stream still holds, and what was trimmed before is counted lost,
  exactly (entries-added - length). Otherwise, at the first watch of the prefix, a stream whose oldest
  retained entry was written after the reader was installed here is new too (read from that entry, the
  trimmed rest counted lost); any other starts at its last entry, and the entries before are neither counted
  nor lost (no fake burst of history or loss for queues that were there before queuelens).
  KEYS[i]        queue i's state hash (ownKeys.eventsQueue), i = 1..n; all in one slot with the streams
  ARGV[1]        generation of the caller's term
  ARGV[2]        installedAt of the reader (ownKeys.eventsMeta, Redis clock ms)
  ARGV[2+i]      queue i's events stream (<prefix>:<queue>:events). Passed as an argument, not a key: Redis
                 checks every key given to EVAL for write access, and the sidecar only reads BullMQ's keys
                 (docs/security.md); each call inside is still checked for the access it needs (XINFO: read).
  ARGV[2+n+i]    1 when queue i is new to a prefix this reader already watched, else 0 (or absent)
  Returns the highest generation stored when it is above the caller's (a newer term claimed one of the queues,
  or the generation counter was lost: the caller tells the two apart by whether it still holds the lease), else
  the cursor of each queue.
]]
local gen = tonumber(ARGV[1])
local installed = tonumber(ARGV[2])
local n = #KEYS
local newest = gen
for i = 1, n do
  local stored = tonumber(redis.call('HGET', KEYS[i], 'r|gen'))
  if stored and stored > newest then newest = stored end
end
if newest > gen then return newest end

local function info(stream)
  local r = redis.pcall('XINFO', 'STREAM', stream)
  if type(r) ~= 'table' or r.err then return nil end
  local m = {}
  for j = 1, #r, 2 do m[r[j]] = r[j + 1] end
  return m
end

local out = {}
for i = 1, n do
  local hash, stream = KEYS[i], ARGV[2 + i]
  local cursor = redis.call('HGET', hash, 'r|cursor')
  if not cursor then
    local seen, lost = 0, 0
    cursor = '0-0'
    local s = info(stream)
    if s and s['entries-added'] > 0 then
      local firstMs = tonumber(string.match(s['recorded-first-entry-id'], '^(%d+)'))
      if ARGV[2 + n + i] == '1' or firstMs >= installed then
        lost = s['entries-added'] - s['length']
        seen = lost
      else
        cursor = s['last-generated-id']
        seen = s['entries-added']
      end
    end
    redis.call('HSET', hash, 'r|cursor', cursor, 'r|seen', seen, 'r|lost', lost, 'r|lag_ms', 0)
  end
  redis.call('HSET', hash, 'r|gen', gen)
  out[i] = cursor
end
return out
