// Owns one collection: every watched queue's state read from Redis in read-only Lua calls (a group of queues per
// call, so no call runs long; in a Cluster a group shares a slot), plus CLIENT LIST on every master for worker
// counts. Calls are auto-pipelined, so a collection costs about one round trip per node.
import type { Logger } from '../log/logger.js';
import { connectionState, isCluster, masters, type RedisClient } from '../redis/connection.js';
import { queueBase, queueKey, workerClientName } from '../redis/keys.js';
import { queueId, type QueueRef } from '../domain/queue-ref.js';
import { countOrphanedActive, getQueueStates, type QueueFields } from '../redis/lua-scripts.js';
import { bindScript, type CallOf } from '../redis/scripts.js';
import { groupBySlot } from '../redis/slots.js';
import type { QueueDiscovery } from './discovery.js';
import { markDeadLetterQueues, type CollectionSnapshot, type QueueState } from '../domain/queue-snapshot.js';

export interface CollectorOptions {
  redis: RedisClient;
  discovery: QueueDiscovery;
  log: Logger;
  /** Queues per Lua call: 16 queues cost Redis ~0.25 ms (bench/collector.ts). */
  groupSize?: number;
  /**
   * Active-job locks checked inside one group call, shared by its queues, so a group of busy queues cannot
   * push the call past a millisecond; the rest are checked in pages of `orphanPageSize`.
   */
  activeCheckLimit?: number;
  orphanPageSize?: number;
}

/** Above this, the limiter counter was set by queue.rateLimit()/worker.rateLimit() (MAX_SAFE_INTEGER). */
const MANUAL_RATE_LIMIT = 2 ** 52;

export class Collector {
  private seq = 0;
  private lastSuccessAt = 0;
  private clientListRefused = false;
  /** Queues the last collection could not read, by id: each is logged when it becomes unreadable, not every time. */
  private unreadable = new Set<string>();
  private readonly getQueueStates: CallOf<typeof getQueueStates>;
  private readonly countOrphanedActive: CallOf<typeof countOrphanedActive>;
  /**
   * Per queue, the highest limiter counter seen. A Worker's `limiter: { max }` is passed to BullMQ's scripts on
   * every call and never stored, so its max is learnt: BullMQ holds jobs back exactly while the window's counter
   * is at max, and a binding limiter fills every window to it.
   */
  private readonly limiterPeak = new Map<string, number>();
  /** Queues of worker connections in the last CLIENT LIST that discovery does not know (see readWorkers). */
  private unknownWorkers: QueueRef[] = [];
  /** Per queue, the distinct workers holding active-job locks in the last collection (see readQueues). */
  private lockOwners = new Map<string, number>();

  constructor(private readonly opts: CollectorOptions) {
    this.getQueueStates = bindScript(opts.redis, getQueueStates);
    this.countOrphanedActive = bindScript(opts.redis, countOrphanedActive);
  }

  async collect(): Promise<CollectionSnapshot> {
    const started = performance.now();
    const refs = this.opts.discovery.queues();
    this.seq += 1;
    try {
      // Both in flight at once: CLIENT LIST does not depend on the queue states.
      const [{ queues, unreadable }, workers] = await Promise.all([this.readQueues(refs), this.readWorkers(refs)]);
      if (this.unknownWorkers.length > 0) await this.opts.discovery.suggest(this.unknownWorkers);
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
      return this.snapshot(false, started, [], err);
    }
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
    return {
      seq: this.seq,
      ok,
      error: err === undefined ? undefined : describeRedisError(err, connectionState(this.opts.redis)),
      finishedAt: Date.now(),
      durationSeconds: (performance.now() - started) / 1000,
      lastSuccessAt: this.lastSuccessAt,
      // A hung Redis keeps the connection 'ready': a command that got no answer in time counts as down too.
      redisUp: this.opts.redis.status === 'ready' && !(err !== undefined && isNoAnswer(err)),
      queues,
      queuesByPrefix,
      queuesDropped: this.opts.discovery.dropped(),
      queuesSkipped: { ...this.opts.discovery.skipped(), unreadable },
    };
  }

  private async readQueues(refs: readonly QueueRef[]): Promise<{ queues: QueueState[]; unreadable: QueueRef[] }> {
    const activeLimit = this.opts.activeCheckLimit ?? 200;
    const groups = groupBySlot(refs, queueBase, this.opts.groupSize ?? 16, isCluster(this.opts.redis));
    const replies = await Promise.all(groups.map((g) => this.getQueueStates({ bases: g.map(queueBase), activeCheckLimit: activeLimit })));

    const states: QueueState[] = [];
    const unreadable: QueueRef[] = [];
    this.lockOwners = new Map();
    const needPages: Array<{ state: QueueState; from: number; total: number }> = [];
    for (const [g, group] of groups.entries()) {
      const { nowMs, queues } = replies[g]!;
      for (const [i, ref] of group.entries()) {
        const f = queues[i];
        if (!f) {
          unreadable.push(ref);
          continue;
        }
        if (f.metaExists === 0 && !this.opts.discovery.isFixed) {
          this.opts.discovery.forget(ref);
          this.limiterPeak.delete(queueId(ref));
          continue;
        }
        const state = toQueueState(ref, f, nowMs, this.learnLimiterPeak(ref, f.limiterCount, f.limiterPttl));
        this.lockOwners.set(queueId(ref), f.lockOwners);
        states.push(state);
        if (f.active > f.activeLocksChecked) needPages.push({ state, from: f.activeLocksChecked, total: f.active });
      }
    }
    if (needPages.length > 0) await this.countRemainingOrphans(needPages);
    markDeadLetterQueues(states);
    return { queues: states, unreadable };
  }

  private learnLimiterPeak(ref: QueueRef, count: number, pttl: number): number {
    const id = queueId(ref);
    let peak = this.limiterPeak.get(id) ?? 0;
    if (pttl > 0 && count < MANUAL_RATE_LIMIT && count > peak) {
      peak = count;
      this.limiterPeak.set(id, peak);
    }
    return peak;
  }

  private async countRemainingOrphans(items: Array<{ state: QueueState; from: number; total: number }>): Promise<void> {
    const page = this.opts.orphanPageSize ?? 256;
    const calls: Array<Promise<void>> = [];
    for (const { state, from, total } of items) {
      // The group call checked the `from` newest ids (the left end); the rest are paged from the right end, which
      // jobs taken meanwhile (LPUSHed on the left) do not shift.
      const remaining = total - from;
      for (let done = 0; done < remaining; done += page) {
        const size = Math.min(page, remaining - done);
        calls.push(
          this.countOrphanedActive({ activeKey: queueKey(state.ref, 'active'), base: queueBase(state.ref), start: -(done + size), stop: -(done + 1) }).then((n) => {
            state.orphanedActive += n;
          }),
        );
      }
    }
    await Promise.all(calls);
  }

  /**
   * Worker connections per queue from CLIENT LIST, or undefined where the command is not allowed. In a Cluster a
   * worker's named connection shows on every node it talks to, so the busiest node's count is taken, not the sum.
   */
  private async readWorkers(refs: readonly QueueRef[]): Promise<Map<string, number> | undefined> {
    if (this.clientListRefused) return undefined;
    let lists: string[];
    try {
      lists = (await Promise.all(masters(this.opts.redis).map((n) => n.client('LIST')))) as string[];
    } catch (err) {
      const msg = (err as Error).message;
      if (/NOPERM|unknown command|ERR.*CLIENT|disabled/i.test(msg)) {
        this.clientListRefused = true;
        this.opts.log.warn({ err: msg }, 'CLIENT LIST is not allowed on this Redis: bullmq_queue_workers will be absent');
        return undefined;
      }
      throw err;
    }
    const byName = new Map<string, string>();
    for (const ref of refs) byName.set(workerClientName(ref), queueId(ref));
    const best = new Map<string, number>();
    const unknown = new Map<string, QueueRef>();
    for (const list of lists) {
      const counts = new Map<string, number>();
      for (const line of list.split('\n')) {
        const m = / name=(\S+)/.exec(line);
        if (!m) continue;
        const name = m[1]!;
        const w = name.indexOf(':w:');
        const id = byName.get(w === -1 ? name : name.slice(0, w));
        if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
        else {
          const ref = this.workerQueue(name);
          if (ref) unknown.set(queueId(ref), ref);
        }
      }
      for (const [id, n] of counts) best.set(id, Math.max(best.get(id) ?? 0, n));
    }
    this.unknownWorkers = [...unknown.values()].slice(0, 100);
    return best;
  }

  /** The queue a BullMQ connection name `<prefix>:<base64(queue)>[:…]` belongs to, under a watched prefix. */
  private workerQueue(clientName: string): QueueRef | undefined {
    for (const prefix of this.opts.discovery.prefixes) {
      if (!clientName.startsWith(`${prefix}:`)) continue;
      const encoded = clientName.slice(prefix.length + 1).split(':')[0]!;
      const name = Buffer.from(encoded, 'base64').toString('utf8');
      // Only names that round-trip: anything else is some other client under a similar name.
      if (name !== '' && !name.includes(':') && Buffer.from(name).toString('base64') === encoded) return { prefix, name };
    }
    return undefined;
  }
}

function toQueueState(ref: QueueRef, f: QueueFields, nowMs: number, limiterPeak: number): QueueState {
  const { paused, waiting, active, prioritized, delayed, waitingChildren, completed, failed, delayedOverdue: overdue, headEligibleMs: headEligible } = f;
  const { oldestActiveStartMs: oldestActive, orphanedActive: orphans, limiterPttl, limiterCount, globalRateMax: globalMax } = f;
  const backlog = waiting + prioritized;
  let rateLimited = false;
  if (limiterPttl > 0) {
    if (limiterCount >= MANUAL_RATE_LIMIT) rateLimited = true;
    else if (globalMax >= 0) rateLimited = limiterCount >= globalMax;
    // A Worker's limiter: BullMQ's own test (getRateLimitTTL) is counter >= max, with max learnt as the peak.
    // A live window with a backlog and nothing running is rate limited whatever the max.
    else rateLimited = backlog > 0 && (limiterCount >= limiterPeak || active === 0);
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
