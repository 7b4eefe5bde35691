// Where `queuelens top` gets its data: a sidecar's /api/queues, or Redis directly through the same discovery,
// collector, persisted event accounting and queue board the sidecar uses (so both show the same numbers).
import { Collector } from '../collector/collector.js';
import { QueueDiscovery } from '../collector/discovery.js';
import type { Logger } from '../log/logger.js';
import { safeUrl } from '../log/redact.js';
import { EVENT_BUCKETS_SECONDS } from '../events/buckets.js';
import { readEventAccounting } from '../events/read-back.js';
import { createRedis } from '../redis/connection.js';
import { RedisQueueStateSource } from '../redis/queue-state-source.js';
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

export function redisSource(o: RedisSourceOptions): TopSource {
  const redis = createRedis({ url: o.redisUrl, clusterNodes: o.clusterNodes, name: 'queuelens:top', log: o.log, lazyConnect: true, commandTimeoutMs: 5000 });
  const discovery = new QueueDiscovery({ redis, prefixes: o.prefixes, maxQueues: 5000, log: o.log });
  const collector = new Collector({ source: new RedisQueueStateSource({ redis, log: o.log }), discovery, log: o.log });
  const board = new QueueBoard({ collectIntervalSeconds: o.intervalSeconds, histogramBounds: EVENT_BUCKETS_SECONDS });
  let reads = 0;
  return {
    label: o.clusterNodes?.length ? `cluster ${o.clusterNodes.join(',')}` : safeUrl(o.redisUrl),
    async read() {
      if (redis.status === 'wait') await redis.connect().catch(() => undefined);
      if (reads % DISCOVER_EVERY === 0 || discovery.completedPasses() === 0) await discovery.runPass().catch(() => undefined);
      reads += 1;
      await runCollectionCycle({
        collector,
        board,
        // Read-only: the accounting a sidecar's event reader persisted, if one runs.
        readAccounting: async (snapshot) => (snapshot.ok ? await readEventAccounting(redis, o.ownPrefix).catch(() => undefined) : undefined),
      });
      return board.response({ now: Date.now() });
    },
    async close() {
      redis.disconnect();
    },
  };
}
