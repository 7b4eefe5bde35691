// The backend seam (src/domain/backend.ts): the collection cycle and the queue board above it take any
// SnapshotSource. The same cycle runs on BullMQ-on-Redis (collector/ over redis/queue-state-source.ts) and on
// BullMQ-on-PostgreSQL (postgres/snapshot.ts), and the board shows, for each, what BullMQ itself counts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Collector } from '../src/collector/collector.js';
import { QueueDiscovery } from '../src/collector/discovery.js';
import type { SnapshotSource } from '../src/domain/backend.js';
import { EVENT_BUCKETS_SECONDS } from '../src/events/buckets.js';
import { createLogger } from '../src/log/logger.js';
import { PostgresSnapshotCollector } from '../src/postgres/snapshot.js';
import { createRedis, type RedisClient } from '../src/redis/connection.js';
import { RedisQueueStateSource } from '../src/redis/queue-state-source.js';
import { runCollectionCycle } from '../src/sidecar/collection-cycle.js';
import { QueueBoard } from '../src/status/queue-board.js';
import { BullFixtures } from './helpers/bullmq.js';
import { PostgresBullFixtures } from './helpers/postgres-bullmq.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres-server.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

const log = createLogger({ level: 'silent' });
let redis: TestRedis;
let pgServer: TestPostgres;
let bull: BullFixtures;
let pgBull: PostgresBullFixtures;
let client: RedisClient;

beforeAll(async () => {
  [redis, pgServer] = await Promise.all([startTestRedis(), startTestPostgres()]);
  bull = new BullFixtures(redis);
  pgBull = new PostgresBullFixtures(pgServer);
  await pgBull.migrate();
  client = createRedis({ url: redis.url, log });
});
afterAll(async () => {
  client?.disconnect();
  await bull?.close();
  await pgBull?.close();
  await Promise.all([redis?.stop(), pgServer?.stop()]);
});

/** One cycle through `source`, then the board's view of `queue`: backlog and delayed, against BullMQ's own counts. */
async function throughTheCycle(source: SnapshotSource, queue: string): Promise<{ backlog: number; delayed: number } | undefined> {
  const board = new QueueBoard({ collectIntervalSeconds: 5, histogramBounds: EVENT_BUCKETS_SECONDS });
  const { snapshot } = await runCollectionCycle({ collector: source, board, readAccounting: async () => undefined });
  expect(snapshot.ok, snapshot.error).toBe(true);
  const view = board.response({ now: Date.now() }).queues.find((q) => q.name === queue);
  return view && { backlog: view.backlog, delayed: view.jobs.delayed };
}

describe('backend seam', () => {
  it('one collection cycle, two backends: the board shows what BullMQ counts on each', async () => {
    for (const fixtures of [bull, pgBull]) {
      const q = fixtures.queue('seam');
      for (let i = 0; i < 4; i++) await q.add('now', { i });
      await q.add('urgent', {}, { priority: 3 });
      await q.add('later', {}, { delay: 3_600_000 });
    }
    const discovery = new QueueDiscovery({ redis: client, prefixes: ['bull'], maxQueues: 100, log });
    await discovery.runPass();
    const sources: Array<[string, SnapshotSource, () => Promise<Record<string, number>>]> = [
      ['redis', new Collector({ source: new RedisQueueStateSource({ redis: client, log }), discovery, log }), () => bull.queue('seam').getJobCounts()],
      ['postgres', new PostgresSnapshotCollector(pgServer.pool(1)), () => pgBull.queue('seam').getJobCounts()],
    ];
    for (const [name, source, counts] of sources) {
      const truth = await counts();
      expect(await throughTheCycle(source, 'seam'), name).toEqual({ backlog: truth.waiting! + truth.prioritized!, delayed: truth.delayed });
      expect(truth.waiting! + truth.prioritized!, name).toBe(5);
    }
  });
});
