// Adversarial: discovery on evidence (collector/discovery.ts) against Redis's counters being reset or masked.
// Ground truth: the keys Redis holds, and Redis's own SCAN call count.
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueueDiscovery } from '../src/collector/discovery.js';
import { createLogger } from '../src/log/logger.js';
import { createRedis } from '../src/redis/connection.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;
let bull: BullFixtures;
beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  await bull.queue('base').add('x', {});
});
afterAll(async () => {
  await bull?.close();
  await redis?.stop();
});

async function discovery(): Promise<{ d: QueueDiscovery; close(): void }> {
  const log = createLogger({ level: 'silent' });
  const client = createRedis({ url: redis.url, name: 'test:adv-discovery', log });
  const d = new QueueDiscovery({ redis: client, prefixes: ['bull'], maxQueues: 100, log });
  await waitFor('connected', async () => (await client.ping()) === 'PONG');
  return { d, close: () => client.disconnect() };
}

const names = (d: QueueDiscovery) =>
  d
    .queues()
    .map((q) => q.name)
    .sort();

describe('adversary: discovery evidence', () => {
  it('CONFIG RESETSTAT between passes, then a new queue: the next pass SCANs and finds it, and drops one obliterated after', async () => {
    const { d, close } = await discovery();
    const c = redis.client();
    try {
      await d.runPass();
      await d.runPass();
      await c.config('RESETSTAT');
      await bull.queue('after-reset').add('x', {});
      await d.runPass();
      expect(names(d)).toContain('after-reset');
      await c.config('RESETSTAT');
      await bull.queue('after-reset').obliterate({ force: true });
      await d.runPass();
      expect(names(d)).not.toContain('after-reset');
      expect(names(d)).toContain('base');
    } finally {
      c.disconnect();
      close();
    }
  });

  // Evidence: KEY_COMMANDS' call counts, and the key count unless a key expired meanwhile. A Queue object writes its
  // meta hash with HSET (not a KEY_COMMAND); if any other key expires in the same window (every idle worker's
  // stalled-check key does, every stalledInterval), the pass judges nothing changed, and the queue waits for the
  // forced full SCAN (10 min). Documented in discovery.ts as a known blind spot; the queue holds no job yet.
  it.skip('FINDING (low, documented): a queue that only wrote its meta hash while another key expired is not found until the 10-min full SCAN', async () => {
    const { d, close } = await discovery();
    const c = redis.client();
    try {
      await d.runPass();
      await d.runPass();
      await c.set('adv:tmp', '1', 'PX', 1);
      const q = new Queue('meta-only', { connection: bull.connection });
      await q.waitUntilReady();
      await waitFor('meta written', async () => (await c.exists('bull:meta-only:meta')) === 1);
      await waitFor('the other key expired', async () => (await c.exists('adv:tmp')) === 0);
      await d.runPass();
      expect(names(d)).toContain('meta-only');
      await q.close();
    } finally {
      c.disconnect();
      close();
    }
  });
});
