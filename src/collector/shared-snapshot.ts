// Owns how replicas share one collection: the replica whose event reader holds every shard (it alone knows which
// queues changed, collector/change-plan.ts) collects and writes each good snapshot, compact, under queuelens's own
// prefix with Redis's clock; the other replicas render that instead of each reading every queue again. What they
// render is judged by the one freshness rule (collector/freshness.ts) through its age on Redis's clock: the key
// expires when it would turn stale, and a replica finding none (no leader yet, a leader gone or stuck) collects
// by itself as before.
import type { CollectOptions, SnapshotSource } from '../domain/backend.js';
import { markDeadLetterQueues, type CollectionSnapshot, type QueueState } from '../domain/queue-snapshot.js';
import type { Logger } from '../log/logger.js';
import { staleLimitSeconds } from './freshness.js';

/** Where the shared snapshot is kept. */
export interface SnapshotStore {
  /** Stores `encoded`, stamped by the caller, for `ttlMs`. */
  save(encoded: string, ttlMs: number): Promise<void>;
  /** The stored value, if any, and the store's clock now (ms). */
  load(): Promise<{ encoded: string | null; nowMs: number }>;
  /** The store's clock (ms). */
  now(): Promise<number>;
  /** Deletes the stored value. */
  clear(): Promise<void>;
}

interface StringClient {
  del(key: string): Promise<unknown>;
  get(key: string): Promise<string | null>;
  set(key: string, value: string, px: 'PX', ms: number): Promise<unknown>;
  time(): Promise<[string | number, string | number] | unknown[]>;
}

export class RedisSnapshotStore implements SnapshotStore {
  constructor(
    private readonly redis: StringClient,
    private readonly key: string,
  ) {}
  async save(encoded: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.key, encoded, 'PX', Math.max(1, Math.round(ttlMs)));
  }
  async load(): Promise<{ encoded: string | null; nowMs: number }> {
    const [encoded, nowMs] = await Promise.all([this.redis.get(this.key), this.now()]);
    return { encoded, nowMs };
  }
  async clear(): Promise<void> {
    await this.redis.del(this.key);
  }
  async now(): Promise<number> {
    const [sec, usec] = (await this.redis.time()) as [string, string];
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  }
}

export interface SharedSnapshotsOptions {
  collector: SnapshotSource;
  store: SnapshotStore;
  /** This replica collects and writes (its reader holds every shard); the others read. */
  writes: () => boolean;
  /** Seconds between collections (freshness: a snapshot older than three of them is not used). */
  intervalSeconds: number;
  log: Logger;
}

/** Format version of the stored value. */
const VERSION = 1;

interface Stored {
  v: number;
  /** Store clock (ms) when it was written, right after its collection. */
  at: number;
  /** The writer's interval (s): the value expires after three of them. */
  interval: number;
  durationSeconds: number;
  queuesByPrefix: CollectionSnapshot['queuesByPrefix'];
  queuesDropped: number;
  queuesSkipped: CollectionSnapshot['queuesSkipped'];
  /** One array per queue, see encodeQueue. */
  queues: unknown[][];
}

export class SharedSnapshots implements SnapshotSource {
  private seq = 0;
  private lastSuccessAt = 0;
  private failed = false;
  private wrote = false;
  /** Where the last snapshot came from ('collected' | 'shared'), for tests and the log. */
  lastSource: 'collected' | 'shared' | undefined;

  constructor(private readonly o: SharedSnapshotsOptions) {}

  async collect(o: CollectOptions = {}): Promise<CollectionSnapshot> {
    if (!this.o.writes() && !o.full) {
      const shared = await this.readShared();
      if (shared) return this.hand(shared, 'shared');
    }
    const s = await this.o.collector.collect(o);
    if (s.ok && this.o.writes()) await this.write(s);
    return this.hand(s, 'collected');
  }

  /**
   * On shutdown, the writer deletes what it wrote: the others collect by themselves at once rather than render it
   * until it expires, and a replica starting next never takes it for a live leader's.
   */
  async release(): Promise<void> {
    if (!this.wrote || !this.o.writes()) return;
    await this.o.store.clear().catch(() => undefined);
  }

  /** Renumbers (render caches key on seq) and keeps the last success over both paths. */
  private hand(s: CollectionSnapshot, source: 'collected' | 'shared'): CollectionSnapshot {
    this.seq += 1;
    if (s.ok) this.lastSuccessAt = Math.max(this.lastSuccessAt, s.lastSuccessAt);
    this.lastSource = source;
    return { ...s, seq: this.seq, lastSuccessAt: Math.max(this.lastSuccessAt, s.lastSuccessAt) };
  }

  private async write(s: CollectionSnapshot): Promise<void> {
    try {
      const at = await this.o.store.now();
      const stored: Stored = {
        v: VERSION,
        at,
        interval: this.o.intervalSeconds,
        durationSeconds: s.durationSeconds,
        queuesByPrefix: s.queuesByPrefix,
        queuesDropped: s.queuesDropped,
        queuesSkipped: s.queuesSkipped,
        queues: s.queues.map(encodeQueue),
      };
      await this.o.store.save(JSON.stringify(stored), staleLimitSeconds(this.o.intervalSeconds) * 1000);
      this.wrote = true;
      if (this.failed) this.o.log.info('shared snapshot written again');
      this.failed = false;
    } catch (err) {
      if (!this.failed)
        this.o.log.warn({ err: (err as Error).message }, 'cannot write the shared snapshot; the other replicas collect by themselves meanwhile');
      this.failed = true;
    }
  }

  /** The leader's snapshot aged to now, or undefined (none, unreadable, another format, or stale). */
  private async readShared(): Promise<CollectionSnapshot | undefined> {
    const started = performance.now();
    let loaded: { encoded: string | null; nowMs: number };
    try {
      loaded = await this.o.store.load();
    } catch {
      return undefined; // the collection that follows says what is wrong with Redis
    }
    if (loaded.encoded === null) return undefined;
    let stored: Stored;
    try {
      stored = JSON.parse(loaded.encoded) as Stored;
    } catch {
      return undefined;
    }
    if (stored.v !== VERSION || !Array.isArray(stored.queues)) return undefined;
    const ageMs = Math.max(0, loaded.nowMs - stored.at);
    if (ageMs / 1000 > staleLimitSeconds(Math.max(stored.interval, this.o.intervalSeconds))) return undefined;
    const queues = stored.queues.map((q) => decodeQueue(q, ageMs / 1000));
    markDeadLetterQueues(queues);
    const now = Date.now();
    return {
      seq: 0,
      ok: true,
      finishedAt: now,
      durationSeconds: stored.durationSeconds + (performance.now() - started) / 1000,
      lastSuccessAt: now - ageMs,
      redisUp: true,
      queues,
      queuesByPrefix: stored.queuesByPrefix,
      queuesDropped: stored.queuesDropped,
      queuesSkipped: stored.queuesSkipped,
    };
  }
}

/** [prefix, name, waiting, prioritized, delayed, active, waiting_children, completed, failed, paused, oldestWaiting, overdue, oldestActive, orphaned, workers, rateLimited]. */
function encodeQueue(q: QueueState): unknown[] {
  const j = q.jobs;
  return [
    q.ref.prefix,
    q.ref.name,
    j.waiting,
    j.prioritized,
    j.delayed,
    j.active,
    j.waiting_children,
    j.completed,
    j.failed,
    q.paused ? 1 : 0,
    q.oldestWaitingAgeSeconds,
    q.delayedOverdue,
    q.oldestActiveAgeSeconds,
    q.orphanedActive,
    q.workers ?? null,
    q.rateLimited ? 1 : 0,
  ];
}

/** A stored queue aged by `ageSeconds`: an age that was running at the collection has gone on running since. */
function decodeQueue(a: unknown[], ageSeconds: number): QueueState {
  const n = (i: number) => Number(a[i] ?? 0);
  const aged = (i: number) => (n(i) > 0 ? n(i) + ageSeconds : 0);
  return {
    ref: { prefix: String(a[0]), name: String(a[1]) },
    jobs: { waiting: n(2), prioritized: n(3), delayed: n(4), active: n(5), waiting_children: n(6), completed: n(7), failed: n(8) },
    paused: n(9) === 1,
    oldestWaitingAgeSeconds: aged(10),
    delayedOverdue: n(11),
    oldestActiveAgeSeconds: aged(12),
    orphanedActive: n(13),
    workers: a[14] === null ? undefined : n(14),
    rateLimited: n(15) === 1,
  };
}
