// Owns one collection: every watched queue's state read through the backend (domain/backend.ts; on Redis
// redis/queue-state-source.ts) and turned into the plain snapshot metrics, /health and the board read: the limiter
// judged, worker counts from connections and locks, unreadable and obliterated queues handled.
import type { CollectOptions, QueueLook, QueueReading, QueueStateSource, SnapshotSource, WorkerCount } from '../domain/backend.js';
import { queueId, type QueueRef } from '../domain/queue-ref.js';
import { markDeadLetterQueues, type CollectionSnapshot, type QueueState } from '../domain/queue-snapshot.js';
import type { Logger } from '../log/logger.js';
import type { ChangePlan } from './change-plan.js';
import { Slicer } from '../util/slicer.js';
import type { QueueDiscovery } from './discovery.js';
import { decodeLimiterRecord, encodeLimiterRecord, judgeWorkerLimiter, MemoryLimiterStore, type LimiterStore } from './worker-limiter.js';

export interface CollectorOptions {
  source: QueueStateSource;
  discovery: QueueDiscovery;
  log: Logger;
  /**
   * Active-job locks checked inside one look, shared by its queues, so a group of busy queues cannot push a call
   * past a millisecond; the backend checks the rest separately (countOrphans).
   */
  activeCheckLimit?: number;
  /** What is learnt of Worker limiters (worker-limiter.ts); the sidecar keeps it in Redis, shared by replicas. */
  limiterStore?: LimiterStore;
  /**
   * Change-driven collection (change-plan.ts): only the queues whose events moved, those not followed and a sweep
   * are read; the others keep their last look. Unset: every queue is read at every collection.
   */
  plan?: ChangePlan;
  /** With a plan, CLIENT LIST runs at most this often (ms); the passes between reuse its counts. */
  workersEveryMs?: number;
}

/** Above this, the limiter counter was set by queue.rateLimit()/worker.rateLimit() (MAX_SAFE_INTEGER). */
const MANUAL_RATE_LIMIT = 2 ** 52;

export class Collector implements SnapshotSource {
  private seq = 0;
  private lastSuccessAt = 0;
  /** Queues the last collection could not read, by id: each is logged when it becomes unreadable, not every time. */
  private unreadable = new Set<string>();
  private readonly limiterStore: LimiterStore;
  /** Per queue, the distinct workers holding active-job locks in the last collection (see readQueues). */
  private lockOwners = new Map<string, number>();
  private lastWorkers: { at: number; count: WorkerCount | undefined } | undefined;

  constructor(private readonly opts: CollectorOptions) {
    this.limiterStore = opts.limiterStore ?? new MemoryLimiterStore();
  }

  async collect(o: CollectOptions = {}): Promise<CollectionSnapshot> {
    if (o.full) {
      this.opts.plan?.clear();
      this.lastWorkers = undefined;
    }
    const started = performance.now();
    const refs = this.opts.discovery.queues();
    this.seq += 1;
    try {
      // Both in flight at once: CLIENT LIST does not depend on the queue states.
      const [{ queues, unreadable }, { counted, fresh }] = await Promise.all([this.readQueues(refs), this.countWorkers(refs)]);
      if (fresh && counted && counted.unknown.length > 0) await this.opts.discovery.suggest(counted.unknown);
      const workers = counted?.byQueue;
      // A worker Redis refused a name for (spaces, non-ASCII) is absent from CLIENT LIST; while it runs a job
      // its lock shows it, so the count is the larger of the two.
      for (const q of queues) {
        const id = queueId(q.ref);
        q.workers = workers ? Math.max(workers.get(id) ?? 0, this.lockOwners.get(id) ?? 0) : undefined;
      }
      this.noteUnreadable(unreadable);
      this.lastSuccessAt = Date.now();
      return this.snapshot(true, started, queues, undefined, unreadable.length);
    } catch (err) {
      // What was kept may no longer hold after an outage (a restart without persistence, a failover that lost
      // writes): the next good collection reads every queue.
      this.opts.plan?.clear();
      return this.snapshot(false, started, [], err);
    }
  }

  /** CLIENT LIST, or with a change plan its last answer while younger than workersEveryMs. */
  private async countWorkers(refs: readonly QueueRef[]): Promise<{ counted: WorkerCount | undefined; fresh: boolean }> {
    const last = this.lastWorkers;
    if (this.opts.plan && last && Date.now() - last.at < (this.opts.workersEveryMs ?? 0)) return { counted: last.count, fresh: false };
    const at = Date.now();
    const counted = await this.opts.source.workers(refs, this.opts.discovery.prefixes);
    this.lastWorkers = { at, count: counted };
    return { counted, fresh: true };
  }

  private noteUnreadable(refs: readonly QueueRef[]): void {
    const now = new Set<string>();
    for (const ref of refs) {
      const id = queueId(ref);
      now.add(id);
      if (!this.unreadable.has(id)) {
        this.opts.log.warn(
          { prefix: ref.prefix, queue: ref.name },
          'cannot read this queue (a key of the wrong type?); it is skipped and counted in bullmq_exporter_queues_dropped{reason="unreadable"}',
        );
      }
    }
    this.unreadable = now;
  }

  private snapshot(ok: boolean, started: number, queues: QueueState[], err?: unknown, unreadable = 0): CollectionSnapshot {
    const queuesByPrefix: Record<string, number> = {};
    for (const ref of this.opts.discovery.queues()) queuesByPrefix[ref.prefix] = (queuesByPrefix[ref.prefix] ?? 0) + 1;
    const link = this.opts.source.link();
    return {
      seq: this.seq,
      ok,
      error: err === undefined ? undefined : describeRedisError(err, link.where === undefined ? undefined : { where: link.where, lastError: link.lastError }),
      finishedAt: Date.now(),
      durationSeconds: (performance.now() - started) / 1000,
      lastSuccessAt: this.lastSuccessAt,
      // A hung Redis keeps the connection 'ready': a command that got no answer in time counts as down too.
      redisUp: link.up && !(err !== undefined && isNoAnswer(err)),
      queues,
      queuesByPrefix,
      queuesDropped: this.opts.discovery.dropped(),
      queuesSkipped: { ...this.opts.discovery.skipped(), unreadable },
    };
  }

  private async readQueues(refs: readonly QueueRef[]): Promise<{ queues: QueueState[]; unreadable: QueueRef[] }> {
    const plan = this.opts.plan?.plan(refs);
    const fresh = await this.opts.source.read(plan ? plan.read : refs, this.opts.activeCheckLimit ?? 200);
    // The local clock when the reply came: a kept look is aged from it (change-plan.ts).
    const readAt = Date.now();
    const looks = plan ? inOrder(refs, fresh, plan.kept) : fresh;
    const read = new Set(plan ? fresh : []);
    const kept: Array<[QueueLook, QueueState]> = [];
    const states: QueueState[] = [];
    const unreadable: QueueRef[] = [];
    this.lockOwners = new Map();
    const needPages: Array<Promise<void>> = [];
    const workerLimited = await this.judgeWorkerLimiters(looks);
    // In slices (util/slicer.ts): 10,000 looks turned into states in one go held scrapes for tens of ms.
    const slicer = new Slicer();
    for (const look of looks) {
      if (slicer.due()) await slicer.yield();
      const { ref, nowMs, reading: f } = look;
      if (!f) {
        unreadable.push(ref);
        continue;
      }
      if (f.metaExists === 0 && !this.opts.discovery.isFixed) {
        this.opts.discovery.forget(ref);
        await this.limiterStore.forget(limiterField(ref));
        continue;
      }
      const id = queueId(ref);
      const state = toQueueState(ref, f, nowMs, workerLimited.has(id));
      this.lockOwners.set(id, f.lockOwners);
      states.push(state);
      if (read.has(look)) kept.push([look, state]);
      if (f.active > f.activeLocksChecked) {
        needPages.push(this.opts.source.countOrphans(ref, f.activeLocksChecked, f.active).then((n) => void (state.orphanedActive += n)));
      }
    }
    await Promise.all(needPages);
    if (plan) {
      // Kept with the orphans of the pages read after the look, so a later pass reuses the whole count.
      for (const [look, state] of kept) {
        const f = look.reading as QueueReading;
        this.opts.plan?.keep({ ...look, reading: { ...f, orphanedActive: state.orphanedActive, activeLocksChecked: f.active } }, readAt);
      }
      for (const look of fresh) if (!look.reading || look.reading.metaExists === 0) this.opts.plan?.keep(look, readAt);
    }
    markDeadLetterQueues(states);
    return { queues: states, unreadable };
  }

  /** Queues whose Worker limiter holds jobs back (worker-limiter.ts); records are written only when they change. */
  private async judgeWorkerLimiters(looks: Awaited<ReturnType<QueueStateSource['read']>>): Promise<Set<string>> {
    const live = looks.flatMap(({ ref, nowMs, reading: f }) =>
      f && f.metaExists !== 0 && f.limiterPttl > 0 && f.limiterCount < MANUAL_RATE_LIMIT && f.globalRateMax < 0 ? [{ ref, nowMs, f }] : [],
    );
    const limited = new Set<string>();
    if (live.length === 0) return limited;
    const stored = await this.limiterStore.load(live.map((l) => limiterField(l.ref)));
    const changed = new Map<string, string>();
    live.forEach(({ ref, nowMs, f }, i) => {
      const before = stored[i] ?? null;
      const { record, limited: yes } = judgeWorkerLimiter(decodeLimiterRecord(before), {
        count: f.limiterCount,
        pttlMs: f.limiterPttl,
        nowMs,
        backlog: f.waiting + f.prioritized,
      });
      const encoded = encodeLimiterRecord(record);
      if (encoded !== before) changed.set(limiterField(ref), encoded);
      if (yes) limited.add(queueId(ref));
    });
    await this.limiterStore.save(changed);
    return limited;
  }
}

/** The looks of `refs`, in their order, from the ones just read and the kept ones. */
function inOrder(refs: readonly QueueRef[], fresh: readonly QueueLook[], kept: readonly QueueLook[]): QueueLook[] {
  const byId = new Map<string, QueueLook>();
  for (const l of fresh) byId.set(queueId(l.ref), l);
  for (const l of kept) byId.set(queueId(l.ref), l);
  const out: QueueLook[] = [];
  for (const r of refs) {
    const l = byId.get(queueId(r));
    if (l !== undefined) out.push(l);
  }
  return out;
}

/** A queue's field in the limiter store: `<prefix>:<queue>` (queue names cannot contain ':'). */
function limiterField(ref: QueueRef): string {
  return `${ref.prefix}:${ref.name}`;
}

function toQueueState(ref: QueueRef, f: QueueReading, nowMs: number, workerLimited: boolean): QueueState {
  const { paused, waiting, active, prioritized, delayed, waitingChildren, completed, failed, delayedOverdue: overdue, headEligibleMs: headEligible } = f;
  const { oldestActiveStartMs: oldestActive, orphanedActive: orphans, limiterPttl, limiterCount, globalRateMax: globalMax } = f;
  const backlog = waiting + prioritized;
  let rateLimited = false;
  if (limiterPttl > 0) {
    if (limiterCount >= MANUAL_RATE_LIMIT) rateLimited = true;
    else if (globalMax >= 0) rateLimited = limiterCount >= globalMax;
    // A Worker's limiter: BullMQ's own test (getRateLimitTTL) is counter >= max; max and whether it binds are
    // learnt across windows (worker-limiter.ts).
    else rateLimited = workerLimited;
  }
  return {
    ref,
    jobs: { waiting, prioritized, delayed, active, waiting_children: waitingChildren, completed, failed },
    paused: paused === 1,
    oldestWaitingAgeSeconds: backlog > 0 && headEligible >= 0 ? Math.max(0, nowMs - headEligible) / 1000 : 0,
    delayedOverdue: overdue,
    oldestActiveAgeSeconds: active > 0 && oldestActive >= 0 ? Math.max(0, nowMs - oldestActive) / 1000 : 0,
    orphanedActive: orphans,
    rateLimited,
  };
}

/** The error says Redis did not answer at all (down, unreachable or hung), not that it refused something. */
function isNoAnswer(err: unknown): boolean {
  return /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ETIMEDOUT|Connection is closed|Stream isn't writeable|enableOfflineQueue|max retries|Cluster isn't ready|Failed to refresh slots|Command timed out/i.test(
    err instanceof Error ? err.message : String(err),
  );
}

/**
 * Turns a Redis client error into a sentence saying what is wrong, where, and that the sidecar keeps retrying.
 * `link`: the connection's address and its own last error, named instead of ioredis's internal wording.
 */
export function describeRedisError(err: unknown, link?: { where: string; lastError?: string }): string {
  const msg = err instanceof Error ? err.message : String(err);
  if (isNoAnswer(err) && !/Command timed out/i.test(msg)) {
    if (!link) return `Redis is unreachable (${msg}); retrying`;
    // ioredis's own wording for "not connected" says nothing to a user; until the reconnect fails with a reason, say that.
    const internal = /Stream isn't writeable|enableOfflineQueue|Connection is closed|max retries/i.test(msg);
    return `Redis at ${link.where} is unreachable (${link.lastError ?? (internal ? 'connection lost' : msg)}); retrying`;
  }
  if (/NOAUTH|WRONGPASS|invalid password/i.test(msg)) return `Redis refused the credentials (${msg}); check REDIS_URL`;
  if (/Command timed out/i.test(msg)) return `Redis${link ? ` at ${link.where}` : ''} did not answer in time (${msg}); retrying`;
  if (/CROSSSLOT/i.test(msg)) return `Redis Cluster refused a multi-key call (${msg}); queue keys must share a hash tag, e.g. prefix {bull}`;
  return msg;
}
