// Judges whether a Worker's `limiter: { max, duration }` option holds jobs back. BullMQ passes that max to its
// scripts on every call and never stores it (moveToActive: getRateLimitTTL holds jobs while the window counter
// is >= max), so it is learnt from the counter, and the evidence is kept in Redis under the sidecar's own prefix
// so that every replica, and a restarted sidecar, judge from the same record.
//
// A binding limiter fills each window to exactly its max early and holds it there while jobs wait; a
// non-binding one ramps up through the window and, if it ever reaches its highest value, does so late. So a
// window counts as a plateau when a collection sees the counter at the learnt max (unchanged by that look) in
// the first half of the window (remaining TTL >= half the longest TTL seen) while jobs wait; a look below the
// max while jobs wait ends the run of plateaus. The flag is set while the counter is at the max, jobs wait, and
// the last two or more windows seen with jobs waiting were plateaus.

/** Per queue, what the collections learnt of its Worker limiter. */
export interface LimiterRecord {
  /** The highest counter seen in a window. */
  max: number;
  /** The longest remaining TTL seen, ms: the window duration as far as is known. */
  durationMs: number;
  /** Consecutive separate windows seen at a plateau at `max`. */
  plateaus: number;
  /** End (Redis clock ms) of the last window counted as a plateau. */
  windowEnd: number;
}

const EMPTY: LimiterRecord = { max: 0, durationMs: 0, plateaus: 0, windowEnd: 0 };
/** Windows at a plateau before the flag is trusted. */
export const PLATEAU_WINDOWS = 2;

export function encodeLimiterRecord(r: LimiterRecord): string {
  return `${r.max}:${r.durationMs}:${r.plateaus}:${r.windowEnd}`;
}

export function decodeLimiterRecord(s: string | null | undefined): LimiterRecord {
  const parts = (s ?? '').split(':').map(Number);
  if (parts.length !== 4 || parts.some((n) => !Number.isFinite(n) || n < 0)) return { ...EMPTY };
  const [max, durationMs, plateaus, windowEnd] = parts as [number, number, number, number];
  return { max, durationMs, plateaus, windowEnd };
}

/** One look at a live window (pttl > 0) of a Worker limiter: the updated record and whether it holds jobs back. */
export function judgeWorkerLimiter(
  prev: LimiterRecord,
  look: { count: number; pttlMs: number; nowMs: number; backlog: number },
): { record: LimiterRecord; limited: boolean } {
  const { count, pttlMs, nowMs, backlog } = look;
  const r = { ...prev };
  const knownDuration = r.durationMs;
  r.durationMs = Math.max(r.durationMs, pttlMs);
  if (count > r.max) {
    // A higher counter: the max was not known; earlier plateaus were at a lower value.
    r.max = count;
    r.plateaus = 0;
    r.windowEnd = 0;
    return { record: r, limited: false };
  }
  if (backlog === 0) return { record: r, limited: false };
  if (count < r.max) {
    r.plateaus = 0;
    return { record: r, limited: false };
  }
  const end = nowMs + pttlMs;
  const early = pttlMs <= knownDuration && pttlMs * 2 >= knownDuration;
  // Window ends are at least one duration apart; two looks at one window differ by clock jitter only.
  if (early && end > r.windowEnd + knownDuration / 2) {
    r.plateaus += 1;
    r.windowEnd = end;
  }
  return { record: r, limited: r.plateaus >= PLATEAU_WINDOWS };
}

/** Where the records live: Redis for the sidecar (shared by replicas), memory for one-off readers. */
export interface LimiterStore {
  load(ids: readonly string[]): Promise<Array<string | null>>;
  save(changed: ReadonlyMap<string, string>): Promise<void>;
  forget(id: string): Promise<void>;
}

export class MemoryLimiterStore implements LimiterStore {
  private readonly map = new Map<string, string>();
  async load(ids: readonly string[]): Promise<Array<string | null>> {
    return ids.map((id) => this.map.get(id) ?? null);
  }
  async save(changed: ReadonlyMap<string, string>): Promise<void> {
    for (const [k, v] of changed) this.map.set(k, v);
  }
  async forget(id: string): Promise<void> {
    this.map.delete(id);
  }
}

interface HashClient {
  hmget(key: string, ...fields: string[]): Promise<Array<string | null>>;
  hset(key: string, ...args: string[]): Promise<number>;
  hdel(key: string, ...fields: string[]): Promise<number>;
}

/** One hash under the sidecar's own prefix; written only when a record changed. */
export class RedisLimiterStore implements LimiterStore {
  constructor(
    private readonly redis: HashClient,
    private readonly key: string,
  ) {}
  load(ids: readonly string[]): Promise<Array<string | null>> {
    return ids.length === 0 ? Promise.resolve([]) : this.redis.hmget(this.key, ...ids);
  }
  async save(changed: ReadonlyMap<string, string>): Promise<void> {
    if (changed.size > 0) await this.redis.hset(this.key, ...[...changed].flat());
  }
  async forget(id: string): Promise<void> {
    await this.redis.hdel(this.key, id);
  }
}
