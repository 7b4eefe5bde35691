// Owns BullMQ on Redis as a SidecarBackend (domain/backend.ts): one connection shared by discovery (SCAN), the
// collector over redis/queue-state-source.ts, the sharded event reader and the accounting read-back, opened
// lazily so a Redis that is down at start is retried in the background. The sidecar and `top` assemble it.
import { BUSY_REREAD_MS, ChangePlan } from '../collector/change-plan.js';
import { DemandPace } from '../collector/demand-pace.js';
import { Collector } from '../collector/collector.js';
import { RedisSnapshotStore, SharedSnapshots } from '../collector/shared-snapshot.js';
import { QueueDiscovery } from '../collector/discovery.js';
import { RedisLimiterStore } from '../collector/worker-limiter.js';
import type { SidecarBackend, SnapshotSource } from '../domain/backend.js';
import type { QueueEventAccounting } from '../domain/event-accounting.js';
import { EventShards, type EventShardsOptions } from '../events/event-shards.js';
import { AccountingReadBack } from '../events/accounting-cache.js';
import { QueueChanges } from '../domain/queue-changes.js';
import type { Logger } from '../log/logger.js';
import { safeUrl } from '../log/redact.js';
import { createRedis, type RedisClient } from '../redis/connection.js';
import { ownKeys } from '../redis/keys.js';
import { RedisQueueStateSource } from '../redis/queue-state-source.js';

export interface RedisBackendOptions {
  redisUrl: string;
  clusterNodes?: readonly string[];
  /** Connection name shown in CLIENT LIST. */
  connectionName: string;
  commandTimeoutMs: number;
  prefixes: readonly string[];
  /** Fixed queue names (no SCAN). */
  fixedQueues?: readonly string[];
  maxQueues: number;
  /** queuelens's own keys: persisted accounting, leases, learnt Worker limiters. */
  ownPrefix: string;
  log: Logger;
  /** Keep what is learnt of Worker limiters in Redis, shared by replicas (the sidecar); else in memory (`top`). */
  sharedLimiters?: boolean;
  /** Run the event reader (leader-elected, sharded); absent: events off, or read-only (`top`). */
  events?: Pick<EventShardsOptions, 'shards' | 'leaseMs' | 'retentionMs' | 'lifecycle'>;
  /**
   * With the event reader on: collection driven by change (collector/change-plan.ts), every queue read again at
   * least this often (ms); 0 or absent: every queue at every collection.
   */
  sweepMs?: number;
  /** A queue with no active job is swept only this often (ms; at least sweepMs); absent: sweepMs. */
  idleSweepMs?: number;
  /** Seconds between collections: with change-driven collection, CLIENT LIST at most this often, and the shared snapshot's freshness. */
  intervalSeconds?: number;
  /**
   * With change-driven collection: the longest period (ms) at which a queue whose events keep moving is re-read and
   * its accounting committed, while its data is asked for seldom or not at all (collector/demand-pace.ts). At most
   * BUSY_REREAD_MS means every second whoever asks. Default DEMAND_MAX_MS.
   */
  busyMaxMs?: number;
}

/** See RedisBackendOptions.busyMaxMs: a Prometheus scraping every 15 s gets a busy queue read once per half scrape. */
export const DEMAND_MAX_MS = 7500;

export class RedisBackend implements SidecarBackend<RedisClient> {
  readonly kind = 'redis';
  readonly redis: RedisClient;
  readonly discovery: QueueDiscovery;
  /** With change-driven collection, SharedSnapshots over the collector: replicas render what the leader collected. */
  readonly snapshots: SnapshotSource;
  readonly events: EventShards | undefined;
  /** What the event reader saw move; undefined unless collection is driven by change. */
  private readonly changes: QueueChanges | undefined;
  private readonly accounting: AccountingReadBack;
  /** How often a busy queue is brought up to date (with change-driven collection). */
  private readonly demand: DemandPace | undefined;
  private closed: Promise<void> | undefined;

  constructor(private readonly o: RedisBackendOptions) {
    const { log } = o;
    this.redis = createRedis({
      url: o.redisUrl,
      clusterNodes: o.clusterNodes,
      name: o.connectionName,
      log,
      lazyConnect: true,
      commandTimeoutMs: o.commandTimeoutMs,
    });
    this.discovery = new QueueDiscovery({ redis: this.redis, prefixes: o.prefixes, fixedQueues: o.fixedQueues, maxQueues: o.maxQueues, log });
    const sweepMs = o.sweepMs ?? 0;
    this.changes = o.events && sweepMs > 0 ? new QueueChanges() : undefined;
    const changes = this.changes;
    const maxMs = Math.max(BUSY_REREAD_MS, o.busyMaxMs ?? DEMAND_MAX_MS);
    const demand = changes && new DemandPace({ minMs: BUSY_REREAD_MS, maxMs, shared: { client: this.redis, key: ownKeys.demand(o.ownPrefix) } });
    this.demand = demand;
    const busyMs = demand && (() => demand.periodMs());
    const collector = new Collector({
      plan: changes && new ChangePlan({ changes, sweepMs, idleSweepMs: o.idleSweepMs, busyRereadMs: busyMs, sweepLikeAnyRead: true }),
      workersEveryMs: (o.intervalSeconds ?? 0) * 1000,
      source: new RedisQueueStateSource({ redis: this.redis, log }),
      discovery: this.discovery,
      log,
      limiterStore: o.sharedLimiters ? new RedisLimiterStore(this.redis, ownKeys.workerLimiters(o.ownPrefix)) : undefined,
    });
    this.snapshots = changes
      ? new SharedSnapshots({
          collector,
          store: new RedisSnapshotStore(this.redis, ownKeys.snapshot(o.ownPrefix)),
          writes: () => changes.isWhole,
          intervalSeconds: o.intervalSeconds ?? 5,
          log,
        })
      : collector;
    this.events = o.events
      ? new EventShards({
          ...o.events,
          client: this.redis,
          redisUrl: o.redisUrl,
          clusterNodes: o.clusterNodes,
          ownPrefix: o.ownPrefix,
          prefixes: o.prefixes,
          log,
          changes: this.changes,
          commitPaceMs: busyMs,
          paceSpacingMs: demand && (() => demand.spacingMs()),
        })
      : undefined;
    // The accounting hashes change only by the readers' commits, which mark them: no lock expires there, so the
    // idle period is their sweep.
    const accountingSweepMs = Math.max(sweepMs, o.idleSweepMs ?? sweepMs);
    this.accounting = new AccountingReadBack({ client: this.redis, ownPrefix: o.ownPrefix, changes: this.changes, sweepMs: accountingSweepMs });
  }

  /** Calls `listener` whenever the event reader saw queues change (a prompt collection); undefined without change data. */
  get onChange(): ((listener: () => void) => () => void) | undefined {
    const changes = this.changes;
    return changes && ((listener) => changes.onStateChange(listener));
  }

  /** Bull Board and the dead-letter routes work on the same connection. */
  get admin(): RedisClient {
    return this.redis;
  }

  async connect(): Promise<void> {
    if (this.redis.status !== 'wait') return;
    await this.redis.connect();
  }

  readAccounting(): Promise<QueueEventAccounting[]> {
    return this.accounting.read();
  }

  requested(): void {
    this.demand?.requested();
  }

  where(): Record<string, unknown> {
    return { redis: safeUrl(this.o.redisUrl), prefixes: this.o.prefixes, queues: this.o.fixedQueues ?? 'discover' };
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      // While this replica still holds the shards: it wrote the shared snapshot, if anyone did.
      if (this.snapshots instanceof SharedSnapshots) await this.snapshots.release();
      await this.events?.close();
      this.redis.disconnect();
    })();
    return this.closed;
  }
}
