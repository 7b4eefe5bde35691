// Owns the change-driven read-back of the persisted event accounting, on the replica whose reader follows the
// queues (domain/queue-changes.ts). Every write to a followed queue's accounting hash is this process's own commit,
// which marks it: the other hashes are kept from their last read and only their lag is aged again (from the
// readers' heartbeats and Redis's clock, as read-back.ts does). While this process holds every shard, the queue
// index changes only by its own hand too, and is scanned again only once per sweep period. A sweep re-reads
// everything once per period all the same. Without change information it is read-back.ts, whole, every time.
import type { RedisClient } from '../redis/connection.js';
import { eventsMember, ownKeys, parseEventsMember } from '../redis/keys.js';
import { queueId, type QueueRef } from '../domain/queue-ref.js';
import type { QueueChanges } from '../domain/queue-changes.js';
import { Slicer } from '../util/slicer.js';
import { lagMs, parseQueueHash, SCRIPT_FIELDS, type QueueEventStats } from './accounting.js';
import { readEventAccounting, type QueueEventAccounting } from './read-back.js';

export interface AccountingReadBackOptions {
  client: RedisClient;
  ownPrefix: string;
  /** Unset: every read is read-back.ts's full one. */
  changes?: QueueChanges;
  /** Everything is read again at least this often (ms). */
  sweepMs: number;
}

const SLICE = 500;

/** The only fields of a queue's hash that lagMs() reads: what is kept of a hash between reads. */
const LAG_FIELDS = [SCRIPT_FIELDS.lagMs, SCRIPT_FIELDS.commitMs, SCRIPT_FIELDS.heartbeat, SCRIPT_FIELDS.graceMs] as const;

function lagFields(hash: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of LAG_FIELDS) if (hash[f] !== undefined) out[f] = hash[f];
  return out;
}

interface Kept {
  /** The four fields lagMs() reads, not the whole hash (a queue with traffic has hundreds of fields). */
  lag: Record<string, string>;
  /** Handed out as is while its lag stays the same, so a consumer can tell an unchanged queue by identity. */
  stats: QueueEventStats;
}

export class AccountingReadBack {
  /**
   * Per index member (non-empty hashes only): what the last read parsed to, and the fields its lag is aged from.
   * Memory per queue: its parsed stats, not its raw hash.
   */
  private hashes = new Map<string, Kept>();
  private members: Set<string> | undefined;
  /** Index member -> its queue and queueId(), parsed once per member rather than at every read. */
  private parsed = new Map<string, { q: QueueRef; id: string } | null>();
  private epoch = -1;
  private fullAt = 0;
  /** Hashes read from Redis in the last call (tests, the log). */
  lastReads = 0;

  constructor(private readonly o: AccountingReadBackOptions) {}

  async read(): Promise<QueueEventAccounting[]> {
    const { client, ownPrefix, changes } = this.o;
    if (!changes) return readEventAccounting(client, ownPrefix);
    const dirty = changes.take('accounting');
    const now = Date.now();
    const full = changes.epoch !== this.epoch || now - this.fullAt >= this.o.sweepMs;
    if (full) {
      this.epoch = changes.epoch;
      this.fullAt = now;
      this.hashes.clear();
    }
    // The index: scanned again unless this process alone writes it (then new queues come marked).
    if (full || !changes.isWhole || !this.members) this.members = await scanIndex(client, ownPrefix);
    else for (const id of dirty) this.members.add(memberOfId(id));

    const heartbeats = await client.hgetall(ownKeys.eventsMeta(ownPrefix));
    const [sec, usec] = await client.time();
    const nowMs = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const queues: Array<{ m: string; q: QueueRef; id: string }> = [];
    for (const m of this.members) {
      let p = this.parsed.get(m);
      if (p === undefined) {
        const q = parseEventsMember(m);
        p = q ? { q, id: queueId(q) } : null;
        this.parsed.set(m, p);
      }
      if (p) queues.push({ m, ...p });
    }
    if (this.parsed.size > this.members.size) for (const m of this.parsed.keys()) if (!this.members.has(m)) this.parsed.delete(m);
    const stale = queues.filter(({ m, id }) => !this.hashes.has(m) || dirty.has(id) || !changes.isFollowed(id));
    this.lastReads = stale.length;
    const slicer = new Slicer();
    for (let start = 0; start < stale.length; start += SLICE) {
      const slice = stale.slice(start, start + SLICE);
      const replies = await Promise.all(slice.map(({ q }) => client.hgetall(ownKeys.eventsQueue(ownPrefix, q))));
      for (const [i, h] of replies.entries()) {
        if (slicer.due()) await slicer.yield();
        const { m } = slice[i] as { m: string };
        // A queue forgotten meanwhile has an empty hash: it leaves the index too.
        if (Object.keys(h).length > 0) this.hashes.set(m, { lag: lagFields(h), stats: parseQueueHash(h, nowMs, heartbeats) });
        else {
          this.hashes.delete(m);
          this.members?.delete(m);
        }
      }
    }
    const out: QueueEventAccounting[] = [];
    for (const { m, q } of queues) {
      if (slicer.due()) await slicer.yield();
      const kept = this.hashes.get(m);
      if (!kept) continue;
      // Only the lag moves with the clock; the counters and histograms are the hash's. Unchanged, the same object.
      const lagSeconds = lagMs(kept.lag, nowMs, heartbeats) / 1000;
      if (lagSeconds !== kept.stats.reader.lagSeconds) kept.stats = { ...kept.stats, reader: { ...kept.stats.reader, lagSeconds } };
      out.push({ queue: q, stats: kept.stats });
    }
    return out;
  }
}

/** Every member of the queue index. ZSCAN, not ZRANGE by rank: the leader re-scores members meanwhile. */
async function scanIndex(client: RedisClient, ownPrefix: string): Promise<Set<string>> {
  const members = new Set<string>();
  let cursor = '0';
  do {
    const [next, flat] = await client.zscan(ownKeys.eventsIndex(ownPrefix), cursor, 'COUNT', SLICE);
    for (let i = 0; i < flat.length; i += 2) members.add(flat[i] as string);
    cursor = next;
  } while (cursor !== '0');
  return members;
}

/** The index member of a queueId (prefix NUL name). */
function memberOfId(id: string): string {
  const i = id.indexOf('\u0000');
  const q: QueueRef = { prefix: id.slice(0, i), name: id.slice(i + 1) };
  return eventsMember(q);
}
