// Owns one collection: every watched queue's state read from Redis in a few pipelined, read-only Lua calls
// (a group of queues per call, so no call runs long), plus CLIENT LIST for worker counts.
import type { Redis } from 'ioredis';
import type { Logger } from '../log/logger.js';
import { queueBase, queueKey, queueId, workerClientName, type QueueRef } from '../redis/keys.js';
import { defineScript } from '../redis/scripts.js';
import type { QueueDiscovery } from './discovery.js';
import { dlqSource, type CollectionSnapshot, type QueueState } from './queue-snapshot.js';

export interface CollectorOptions {
  redis: Redis;
  discovery: QueueDiscovery;
  log: Logger;
  /** Queues per Lua call. 16 queues cost Redis ~0.3 ms. */
  groupSize?: number;
  /** Active jobs per queue lock-checked inside the group call; more are checked in pages of `orphanPageSize`. */
  activeCheckLimit?: number;
  orphanPageSize?: number;
}

type ScriptClient = Redis & {
  getQueueStates(numKeys: number, ...args: Array<string | number>): Promise<unknown[]>;
  countOrphanedActive(activeKey: string, base: string, start: number, stop: number): Promise<number>;
};

/** Above this, the limiter counter was set by queue.rateLimit()/worker.rateLimit() (MAX_SAFE_INTEGER). */
const MANUAL_RATE_LIMIT = 2 ** 52;
const FIELDS = 17;

export class Collector {
  private seq = 0;
  private lastSuccessAt = 0;
  private clientListRefused = false;
  private readonly redis: ScriptClient;

  constructor(private readonly opts: CollectorOptions) {
    defineScript(opts.redis, 'getQueueStates', 'get-queue-states-n.lua');
    defineScript(opts.redis, 'countOrphanedActive', 'count-orphaned-active-1.lua');
    this.redis = opts.redis as ScriptClient;
  }

  async collect(): Promise<CollectionSnapshot> {
    const started = performance.now();
    const refs = this.opts.discovery.queues();
    this.seq += 1;
    try {
      const queues = await this.readQueues(refs);
      const workers = await this.readWorkers(refs);
      for (const q of queues) q.workers = workers?.get(queueId(q.ref)) ?? (workers ? 0 : undefined);
      this.lastSuccessAt = Date.now();
      return this.snapshot(true, started, queues);
    } catch (err) {
      return this.snapshot(false, started, [], describeRedisError(err));
    }
  }

  private snapshot(ok: boolean, started: number, queues: QueueState[], error?: string): CollectionSnapshot {
    const queuesByPrefix: Record<string, number> = {};
    for (const ref of this.opts.discovery.queues()) queuesByPrefix[ref.prefix] = (queuesByPrefix[ref.prefix] ?? 0) + 1;
    return {
      seq: this.seq,
      ok,
      error,
      finishedAt: Date.now(),
      durationSeconds: (performance.now() - started) / 1000,
      lastSuccessAt: this.lastSuccessAt,
      redisUp: this.opts.redis.status === 'ready',
      queues,
      queuesByPrefix,
      queuesDropped: this.opts.discovery.dropped(),
    };
  }

  private async readQueues(refs: readonly QueueRef[]): Promise<QueueState[]> {
    const groupSize = this.opts.groupSize ?? 16;
    const activeLimit = this.opts.activeCheckLimit ?? 100;
    const pipe = this.redis.pipeline() as unknown as ScriptClient;
    const groups: QueueRef[][] = [];
    for (let i = 0; i < refs.length; i += groupSize) {
      const group = refs.slice(i, i + groupSize);
      groups.push(group);
      void pipe.getQueueStates(group.length, ...group.map(queueBase), activeLimit);
    }
    const replies = groups.length > 0 ? ((await (pipe as unknown as ReturnType<Redis['pipeline']>).exec()) ?? []) : [];

    const states: QueueState[] = [];
    const needPages: Array<{ state: QueueState; from: number; total: number }> = [];
    for (const [g, group] of groups.entries()) {
      const [err, reply] = replies[g] ?? [new Error('no reply from Redis')];
      if (err) throw err;
      const arr = reply as unknown[];
      const nowMs = Number(arr[0]);
      for (const [i, ref] of group.entries()) {
        const f = (arr[i + 1] as number[]).map(Number);
        if (f.length !== FIELDS) throw new Error(`unexpected reply shape for queue ${ref.name}`);
        const state = toQueueState(ref, f, nowMs);
        if (f[0] === 0 && !this.opts.discovery.isFixed) {
          this.opts.discovery.forget(ref);
          continue;
        }
        states.push(state);
        const active = f[3]!;
        const checked = f[13]!;
        if (active > checked) needPages.push({ state, from: checked, total: active });
      }
    }
    if (needPages.length > 0) await this.countRemainingOrphans(needPages);
    return states;
  }

  private async countRemainingOrphans(items: Array<{ state: QueueState; from: number; total: number }>): Promise<void> {
    const page = this.opts.orphanPageSize ?? 500;
    const pipe = this.redis.pipeline() as unknown as ScriptClient;
    const owners: QueueState[] = [];
    for (const { state, from, total } of items) {
      for (let start = from; start < total; start += page) {
        void pipe.countOrphanedActive(queueKey(state.ref, 'active'), queueBase(state.ref), start, Math.min(start + page, total) - 1);
        owners.push(state);
      }
    }
    const replies = (await (pipe as unknown as ReturnType<Redis['pipeline']>).exec()) ?? [];
    replies.forEach(([err, n], i) => {
      if (err) throw err;
      owners[i]!.orphanedActive += Number(n);
    });
  }

  /** Worker connections per queue from CLIENT LIST, or undefined where the command is not allowed. */
  private async readWorkers(refs: readonly QueueRef[]): Promise<Map<string, number> | undefined> {
    if (this.clientListRefused) return undefined;
    let list: string;
    try {
      list = (await this.opts.redis.client('LIST')) as string;
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
    const counts = new Map<string, number>();
    for (const line of list.split('\n')) {
      const m = / name=(\S+)/.exec(line);
      if (!m) continue;
      const name = m[1]!;
      const w = name.indexOf(':w:');
      const id = byName.get(w === -1 ? name : name.slice(0, w));
      if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  }
}

function toQueueState(ref: QueueRef, f: number[], nowMs: number): QueueState {
  const [, paused, waiting, active, prioritized, delayed, waitingChildren, completed, failed, overdue, headEligible, oldestActive, orphans, , limiterPttl, limiterCount, globalMax] =
    f as [number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number];
  const backlog = waiting + prioritized;
  let rateLimited = false;
  if (limiterPttl > 0) {
    if (limiterCount >= MANUAL_RATE_LIMIT) rateLimited = true;
    else if (globalMax >= 0) rateLimited = limiterCount >= globalMax;
    // A worker-side limiter's max is not stored in Redis: a live window with a backlog and nothing running
    // is what a rate-limited queue looks like from outside.
    else rateLimited = backlog > 0 && active === 0;
  }
  return {
    ref,
    dlqOf: dlqSource(ref.name),
    jobs: { waiting, prioritized, delayed, active, waiting_children: waitingChildren, completed, failed },
    paused: paused === 1,
    oldestWaitingAgeSeconds: backlog > 0 && headEligible >= 0 ? Math.max(0, nowMs - headEligible) / 1000 : 0,
    delayedOverdue: overdue,
    oldestActiveAgeSeconds: active > 0 && oldestActive >= 0 ? Math.max(0, nowMs - oldestActive) / 1000 : 0,
    orphanedActive: orphans,
    rateLimited,
  };
}

/** Turns a Redis client error into a sentence saying what is wrong and that the sidecar keeps retrying. */
export function describeRedisError(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  if (/ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ETIMEDOUT|Connection is closed|Stream isn't writeable|enableOfflineQueue|max retries/i.test(msg)) {
    return `Redis is unreachable (${msg}); retrying`;
  }
  if (/NOAUTH|WRONGPASS|invalid password/i.test(msg)) return `Redis refused the credentials (${msg}); check REDIS_URL`;
  if (/Command timed out/i.test(msg)) return `Redis did not answer in time (${msg}); retrying`;
  return msg;
}
