// Owns BullMQ on PostgreSQL as a SidecarBackend (domain/backend.ts): one pool (postgres/connection.ts, statement
// timeout, never the password in a log) shared by discovery of the schema's queues on a slow timer (discovery.ts), the
// read-only collection (snapshot.ts, worker counts from pg_stat_activity included), the fenced event follower and the
// accounting read-back (event-follower.ts, accounting-store.ts). With the follower on and a sweep, collection is driven
// by change as on Redis: the follower marks the queues whose events moved (domain/queue-changes.ts), the shared
// planner (collector/change-plan.ts) re-reads those and sweeps the rest, and the leader's collection is shared through
// the own schema (snapshot-store.ts, collector/shared-snapshot.ts). backends/create-backend.ts assembles it.
import type pg from 'pg';
import { ChangePlan } from '../collector/change-plan.js';
import { SharedSnapshots } from '../collector/shared-snapshot.js';
import type { CollectOptions, SidecarBackend, SnapshotSource } from '../domain/backend.js';
import { QueueChanges } from '../domain/queue-changes.js';
import type { QueueEventAccounting } from '../domain/event-accounting.js';
import type { CollectionSnapshot } from '../domain/queue-snapshot.js';
import type { LifecycleOptions } from '../events/lifecycle.js';
import type { Logger } from '../log/logger.js';
import { readPostgresEventAccounting } from './accounting-store.js';
import { createPostgresPool, postgresWhere, redactedMessage } from './connection.js';
import { PostgresQueueDiscovery } from './discovery.js';
import { PostgresEventFollower } from './event-follower.js';
import { answered, describeError, PostgresSnapshotCollector } from './snapshot.js';
import { PostgresSnapshotStore } from './snapshot-store.js';

export interface PostgresBackendOptions {
  databaseUrl: string;
  /** BullMQ's schema: the `prefix` label. */
  schema: string;
  /** queuelens's own schema (event lease, reader state, accounting). */
  ownSchema: string;
  statementTimeoutMs: number;
  /** application_name of queuelens's sessions. */
  applicationName: string;
  fixedQueues?: readonly string[];
  maxQueues: number;
  log: Logger;
  /** Run the event follower (leader-elected by a fenced lease in the own schema); absent: events off, or read-only (`top`). */
  events?: { leaseMs: number; retentionMs?: number; lifecycle: Partial<LifecycleOptions> };
  /**
   * With the event follower on: collection driven by change (collector/change-plan.ts), a queue whose events did not
   * move read again at least this often (ms) while an active job's lock can expire; 0 or absent: every queue at
   * every collection.
   */
  sweepMs?: number;
  /** A queue with nothing that can change without an event is swept only this often (ms; at least sweepMs). */
  idleSweepMs?: number;
  /** Seconds between collections: the shared snapshot's freshness and how often workers of unread queues are counted. */
  intervalSeconds?: number;
}

/**
 * Sessions of the pool: a collection and a discovery pass at once, and the event follower's LISTEN session, lease
 * renewal, pass and the read-back beside them.
 */
const POOL_SIZE = 8;

export class PostgresBackend implements SidecarBackend {
  readonly kind = 'postgres';
  readonly pool: pg.Pool;
  readonly discovery: PostgresQueueDiscovery;
  readonly collector: PostgresSnapshotCollector;
  readonly snapshots: SnapshotSource;
  readonly events: PostgresEventFollower | undefined;
  /** What the event follower saw move; undefined unless collection is driven by change. */
  private readonly changes: QueueChanges | undefined;
  private connected: Promise<void> | undefined;
  private closed: Promise<void> | undefined;

  constructor(private readonly o: PostgresBackendOptions) {
    const { log } = o;
    this.pool = createPostgresPool({ url: o.databaseUrl, applicationName: o.applicationName, statementTimeoutMs: o.statementTimeoutMs, max: POOL_SIZE, log });
    // Both read each other lazily: a collection reads the queues discovery found on its own timer (it never
    // discovers), and discovery runs the collector's query.
    this.discovery = new PostgresQueueDiscovery({
      lister: { discover: (limit) => this.discover(limit) },
      schema: o.schema,
      fixedQueues: o.fixedQueues,
      maxQueues: o.maxQueues,
      log,
    });
    const sweepMs = o.sweepMs ?? 0;
    this.changes = o.events && sweepMs > 0 ? new QueueChanges() : undefined;
    const changes = this.changes;
    const intervalSeconds = o.intervalSeconds ?? 5;
    this.collector = new PostgresSnapshotCollector(this.pool, {
      schema: o.schema,
      statementTimeoutMs: o.statementTimeoutMs,
      maxQueues: o.maxQueues,
      watched: () => this.discovery.watched(),
      plan: changes && new ChangePlan({ changes, sweepMs, idleSweepMs: o.idleSweepMs }),
      workersEveryMs: intervalSeconds * 1000,
    });
    const own: SnapshotSource = { collect: (c) => this.collect(c) };
    // The leader (its lease covers every queue of the schema) writes its collection; the others render it.
    this.snapshots = changes
      ? new SharedSnapshots({
          collector: own,
          store: new PostgresSnapshotStore(this.pool, o.ownSchema, o.schema),
          writes: () => changes.isWhole,
          intervalSeconds,
          log,
        })
      : own;
    this.events = o.events
      ? new PostgresEventFollower({
          pool: this.pool,
          schema: o.schema,
          ownSchema: o.ownSchema,
          log,
          leaseMs: o.events.leaseMs,
          retentionMs: o.events.retentionMs,
          lifecycle: o.events.lifecycle,
          statementTimeoutMs: o.statementTimeoutMs,
          changes,
        })
      : undefined;
  }

  /** Calls `listener` whenever the event follower saw queues change (a prompt collection); undefined without change data. */
  get onChange(): ((listener: () => void) => () => void) | undefined {
    const changes = this.changes;
    return changes && ((listener) => changes.onStateChange(listener));
  }

  /** Checks that the server answers; pg connects per query, so a server down now is simply retried by the next one. */
  connect(): Promise<void> {
    this.connected ??= (async () => {
      try {
        await this.pool.query('SELECT 1');
      } catch (err) {
        throw new Error(`PostgreSQL at ${postgresWhere(this.o.databaseUrl)} does not answer (${redactedMessage(err)})`, { cause: err });
      }
    })();
    return this.connected;
  }

  readAccounting(): Promise<QueueEventAccounting[]> {
    return readPostgresEventAccounting(this.pool, { schema: this.o.schema, ownSchema: this.o.ownSchema, statementTimeoutMs: this.o.statementTimeoutMs });
  }

  where(): Record<string, unknown> {
    return { postgres: postgresWhere(this.o.databaseUrl), schema: this.o.schema, ownSchema: this.o.ownSchema, queues: this.o.fixedQueues ?? 'discover' };
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      // While this replica still holds the lease: it wrote the shared snapshot, if anyone did.
      if (this.snapshots instanceof SharedSnapshots) await this.snapshots.release();
      await this.events?.close();
      await this.pool.end().catch(() => undefined);
    })();
    return this.closed;
  }

  /** Discovery's query, its failure worded like a collection's (what is wrong and what to do; never the URL). */
  private async discover(limit?: number): Promise<string[]> {
    try {
      return await this.collector.discover(limit);
    } catch (err) {
      throw new Error(this.unreachable(err) ?? describeError(err, this.o.schema), { cause: err });
    }
  }

  private async collect(c?: CollectOptions): Promise<CollectionSnapshot> {
    const s = await this.collector.collect(c);
    if (s.ok || s.redisUp || s.error === undefined) return s;
    return {
      ...s,
      error: `PostgreSQL at ${postgresWhere(this.o.databaseUrl)} is unreachable (${redactedMessage(s.error.replace(/^PostgreSQL collection failed: /, ''))}); retrying`,
    };
  }

  /** A sentence for a server that does not answer; undefined when it answered with an error of its own. */
  private unreachable(err: unknown): string | undefined {
    return answered(err) ? undefined : `PostgreSQL at ${postgresWhere(this.o.databaseUrl)} is unreachable (${redactedMessage(err)}); retrying`;
  }
}
