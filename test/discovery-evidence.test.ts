// Discovery paced by evidence: at rest a pass sends no SCAN (Redis's counters say no queue can have appeared),
// and whatever creates or removes a queue (a producer, with or without skipMetasUpdate, a Queue object writing its
// meta hash, obliterate) makes the next pass SCAN and find it. Ground truth: Redis's own SCAN call count.
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueueDiscovery } from '../src/collector/discovery.js';
import { createLogger } from '../src/log/logger.js';
import { createRedis } from '../src/redis/connection.js';
import { BullFixtures } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

let redis: TestRedis;
let bull: BullFixtures;
const names = (d: QueueDiscovery) =>
  d
    .queues()
    .map((q) => q.name)
    .sort();

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  await bull.queue('alpha').add('x', {});
  await bull.queue('beta').add('x', {});
});

afterAll(async () => {
  await bull?.close();
  await redis?.stop();
});

async function scanCalls(): Promise<number> {
  const c = redis.client();
  const info = await c.info('commandstats');
  c.disconnect();
  return Number(/cmdstat_scan:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

/** Runs one pass and returns how many SCAN calls it sent. */
async function pass(d: QueueDiscovery): Promise<number> {
  const before = await scanCalls();
  await d.runPass();
  return (await scanCalls()) - before;
}

function discovery(fullScanEveryMs?: number): { d: QueueDiscovery; close(): void } {
  const log = createLogger({ level: 'silent' });
  const client = createRedis({ url: redis.url, name: 'test:discovery', log });
  const d = new QueueDiscovery({ redis: client, prefixes: ['bull'], maxQueues: 100, log, fullScanEveryMs });
  return { d, close: () => client.disconnect() };
}

describe('discovery paced by evidence', () => {
  it.each([
    ['a producer with no worker', 'gamma', {}],
    ['a producer with skipMetasUpdate', 'delta', { skipMetasUpdate: true }],
  ])('a job added to a new queue by %s makes the next pass SCAN and find it', async (_, name, opts) => {
    const { d, close } = discovery();
    try {
      await pass(d);
      expect(await pass(d)).toBe(0);
      await bull.queue(name, opts).add('x', {});
      expect(await pass(d)).toBeGreaterThan(0);
      expect(names(d)).toContain(name);
    } finally {
      close();
    }
  });

  it('a Queue object that only wrote its meta hash (no job, no event) is found by the key count', async () => {
    const { d, close } = discovery();
    try {
      await pass(d);
      expect(await pass(d)).toBe(0);
      const q = new Queue('epsilon', { connection: bull.connection });
      await q.waitUntilReady();
      const c = redis.client();
      for (let i = 0; i < 200 && (await c.exists('bull:epsilon:meta')) === 0; i += 1) await new Promise((r) => setTimeout(r, 25));
      c.disconnect();
      expect(await pass(d)).toBeGreaterThan(0);
      expect(names(d)).toContain('epsilon');
      await q.close();
    } finally {
      close();
    }
  });

  it('an obliterated queue makes the next pass SCAN and drop it', async () => {
    const { d, close } = discovery();
    try {
      const q = bull.queue('zeta');
      await q.add('x', {});
      await pass(d);
      expect(names(d)).toContain('zeta');
      expect(await pass(d)).toBe(0);
      await q.obliterate({ force: true });
      expect(await pass(d)).toBeGreaterThan(0);
      expect(names(d)).not.toContain('zeta');
    } finally {
      close();
    }
  });

  it('fullScanEveryMs 0 SCANs at every pass, whatever the evidence', async () => {
    const { d, close } = discovery(0);
    try {
      await pass(d);
      expect(await pass(d)).toBeGreaterThan(0);
      expect(await pass(d)).toBeGreaterThan(0);
    } finally {
      close();
    }
  });
  it('at rest, with the sidecar and its event reader running and an idle worker, a pass sends no SCAN', async () => {
    // Its stalled check sets a key that expires every second: expiries alone are no evidence of a new queue.
    bull.worker('alpha', async () => undefined, { stalledInterval: 1000 });
    const s = await testSidecar(redis.url, { events: 'true' });
    await s.refresh();
    const { d, close } = discovery();
    try {
      expect(await pass(d)).toBeGreaterThan(0);
      // The reader creates its own state hashes after its first sync; once it has, nothing creates keys.
      let last = Infinity;
      for (let i = 0; i < 20 && last > 0; i += 1) {
        await new Promise((r) => setTimeout(r, 200));
        last = await pass(d);
      }
      expect(last).toBe(0);
      expect(await pass(d)).toBe(0);
      expect(names(d)).toEqual(expect.arrayContaining(['alpha', 'beta']));
      expect(d.completedPasses()).toBeGreaterThan(d.scanPasses());
    } finally {
      close();
      await s.close();
    }
  });
});
