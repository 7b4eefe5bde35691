// Where `queuelens top` gets its data: a sidecar's /api/queues, or a store directly through a SidecarBackend
// (domain/backend.ts) and the collection cycle the sidecar runs (sidecar/collection-cycle.ts), with the same
// discovery, collector, persisted event accounting and queue board (so both show the same numbers).
import { PostgresBackend } from '../postgres/postgres-backend.js';
import { postgresWhere, queuelensApplicationName } from '../postgres/connection.js';
import { RedisBackend } from '../backends/redis-backend.js';
import type { SidecarBackend } from '../domain/backend.js';
import type { Logger } from '../log/logger.js';
import { safeUrl } from '../log/redact.js';
import { EVENT_BUCKETS_SECONDS } from '../events/buckets.js';
import { runCollectionCycle } from '../sidecar/collection-cycle.js';
import { QueueBoard } from '../status/queue-board.js';
import type { QueuesResponse } from '../status/queue-view.js';

export interface TopSource {
  /** Shown in the header; never carries credentials. */
  label: string;
  read(): Promise<QueuesResponse>;
  close(): Promise<void>;
}

export function sidecarSource(baseUrl: string): TopSource {
  const url = new URL('/api/queues', baseUrl);
  return {
    label: safeUrl(baseUrl),
    async read() {
      let res: Response;
      try {
        res = await fetch(url, { signal: AbortSignal.timeout(5000), headers: { accept: 'application/json' } });
      } catch (err) {
        throw new Error(
          `cannot reach the sidecar at ${safeUrl(url.toString())} (${(err as Error).cause ? String((err as Error & { cause: Error }).cause.message) : (err as Error).message})`,
          { cause: err },
        );
      }
      if (!res.ok) throw new Error(`${safeUrl(url.toString())} answered ${res.status}; is this a queuelens sidecar?`);
      return (await res.json()) as QueuesResponse;
    },
    close: async () => undefined,
  };
}

export interface RedisSourceOptions {
  redisUrl: string;
  clusterNodes?: readonly string[];
  prefixes: readonly string[];
  /** Where a sidecar's event reader persists its accounting (rates and latency come from there). */
  ownPrefix: string;
  intervalSeconds: number;
  log: Logger;
}

/** A fresh SCAN every this many reads picks up new queues without scanning on every refresh. */
const DISCOVER_EVERY = 15;

/** Reads a store directly: discovery every DISCOVER_EVERY reads, one collection cycle per read, read-only. */
export function backendSource(backend: SidecarBackend, label: string, intervalSeconds: number): TopSource {
  const { discovery } = backend;
  const board = new QueueBoard({ collectIntervalSeconds: intervalSeconds, histogramBounds: EVENT_BUCKETS_SECONDS });
  let reads = 0;
  return {
    label,
    async read() {
      await backend.connect().catch(() => undefined);
      if (reads % DISCOVER_EVERY === 0 || discovery.completedPasses() === 0) await discovery.runPass().catch(() => undefined);
      reads += 1;
      await runCollectionCycle({
        collector: backend.snapshots,
        board,
        // Read-only: the accounting a sidecar's event follower persisted, if one runs.
        readAccounting: async (snapshot) => (snapshot.ok && backend.readAccounting ? await backend.readAccounting().catch(() => undefined) : undefined),
      });
      return board.response({ now: Date.now() });
    },
    close: () => backend.close(),
  };
}

export function redisSource(o: RedisSourceOptions): TopSource {
  const backend = new RedisBackend({
    redisUrl: o.redisUrl,
    clusterNodes: o.clusterNodes,
    connectionName: 'queuelens:top',
    commandTimeoutMs: 5000,
    prefixes: o.prefixes,
    maxQueues: 5000,
    ownPrefix: o.ownPrefix,
    log: o.log,
  });
  return backendSource(backend, o.clusterNodes?.length ? `cluster ${o.clusterNodes.join(',')}` : safeUrl(o.redisUrl), o.intervalSeconds);
}

export interface PostgresSourceOptions {
  databaseUrl: string;
  /** BullMQ's schema (the prefix). */
  schema: string;
  /** Where a sidecar's event follower commits its accounting (rates and latency come from there). */
  ownSchema: string;
  statementTimeoutMs: number;
  intervalSeconds: number;
  log: Logger;
}

/** BullMQ on PostgreSQL, read-only: no event follower, the accounting a sidecar committed read back. */
export function postgresSource(o: PostgresSourceOptions): TopSource {
  const backend = new PostgresBackend({
    databaseUrl: o.databaseUrl,
    schema: o.schema,
    ownSchema: o.ownSchema,
    statementTimeoutMs: o.statementTimeoutMs,
    applicationName: queuelensApplicationName('top'),
    maxQueues: 5000,
    log: o.log,
  });
  return backendSource(backend, `${postgresWhere(o.databaseUrl)} schema ${o.schema}`, o.intervalSeconds);
}
