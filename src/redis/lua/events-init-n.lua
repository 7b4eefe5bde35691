--[[
  Gives queues without event state their starting cursor, fenced by the leader lease.
  A stream whose whole history was written after the reader was installed here is read from its beginning
  (nothing of it was trimmed: entries-added = length); any other starts at its last entry, and the
  entries before are neither counted nor lost.
  KEYS[1]        lease key (ownKeys.leader)
  KEYS[2]        reader meta hash (ownKeys.eventsMeta): installedAt, set on the first call
  KEYS[3]        queue index sorted set (ownKeys.eventsIndex)
  KEYS[2+2i]     queue i's state hash (ownKeys.eventsQueue), i = 1..n
  KEYS[3+2i]     queue i's events stream (<prefix>:<queue>:events)
  ARGV[1]        lease token
  ARGV[1+i]      queue i's index member
  Returns false when the caller no longer holds the lease, else the cursor of each queue (existing or new).
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSETNX', KEYS[2], 'installedAt', now)
local installed = tonumber(redis.call('HGET', KEYS[2], 'installedAt'))

local function info(stream)
  local r = redis.pcall('XINFO', 'STREAM', stream)
  if type(r) ~= 'table' or r.err then return nil end
  local m = {}
  for j = 1, #r, 2 do m[r[j]] = r[j + 1] end
  return m
end

local out = {}
local n = (#KEYS - 3) / 2
for i = 1, n do
  local hash, stream = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local cursor = redis.call('HGET', hash, 'r|cursor')
  if not cursor then
    local seen = 0
    cursor = '0-0'
    local s = info(stream)
    if s and s['entries-added'] > 0 then
      local firstMs = tonumber(string.match(s['recorded-first-entry-id'], '^(%d+)'))
      if not (s['entries-added'] == s['length'] and firstMs >= installed) then
        cursor = s['last-generated-id']
        seen = s['entries-added']
      end
    end
    redis.call('HSET', hash, 'r|cursor', cursor, 'r|seen', seen, 'r|lost', 0, 'r|lag_ms', 0)
  end
  redis.call('ZADD', KEYS[3], now, ARGV[1 + i])
  out[i] = cursor
end
return out
