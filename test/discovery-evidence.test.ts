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

describe('discovery with traffic on known queues (standalone: the stream proof)', () => {
  /** One key expired, as a worker's stalled check makes one every stalledInterval: the key count then says nothing. */
  async function expireOne(): Promise<void> {
    const c = redis.client();
    await c.set('test:expiring', '1', 'PX', 1);
    while ((await c.exists('test:expiring')) === 1) await new Promise((r) => setTimeout(r, 2));
    c.disconnect();
  }

  it('passes with traffic on known queues send no SCAN once the moving streams are watched; a new queue still makes the next pass SCAN and find it', async () => {
    const { d, close } = discovery();
    const [iota, kappa] = [bull.queue('iota'), bull.queue('kappa')];
    const traffic = async () => {
      await iota.add('x', {});
      await kappa.add('x', {});
      await kappa.add('x', {});
      await expireOne();
    };
    try {
      await traffic();
      await pass(d);
      await traffic();
      // Not watched yet: the XADDs cannot be placed, so this pass SCANs; its census sees iota and kappa move.
      expect(await pass(d)).toBeGreaterThan(0);
      for (let i = 0; i < 3; i += 1) {
        await traffic();
        expect(await pass(d)).toBe(0);
      }
      expect(names(d)).toEqual(expect.arrayContaining(['iota', 'kappa']));
      await traffic();
      await bull.queue('lambda', { skipMetasUpdate: true }).add('x', {});
      expect(await pass(d)).toBeGreaterThan(0);
      expect(names(d)).toContain('lambda');
      await traffic();
      expect(await pass(d)).toBe(0);
      // A job to a known queue whose stream is not watched: no proof (a SCAN), and it is watched from then on.
      await traffic();
      await bull.queue('lambda').add('x', {});
      expect(await pass(d)).toBeGreaterThan(0);
      await traffic();
      await bull.queue('lambda').add('x', {});
      expect(await pass(d)).toBe(0);
      // An XADD to a stream no queue owns is no proof either.
      await traffic();
      const c = redis.client();
      await c.xadd('other:stream', '*', 'k', 'v');
      c.disconnect();
      expect(await pass(d)).toBeGreaterThan(0);
      expect(d.completedPasses() - d.scanPasses()).toBe(5);
    } finally {
      close();
    }
  });

  it("an XSETID that raises a watched stream's entries-added by the XADDs a new queue got does not hide that queue", async () => {
    const { d, close } = discovery();
    const xi = bull.queue('xi');
    const c = redis.client();
    const traffic = async () => {
      await xi.add('x', {});
      await expireOne();
    };
    try {
      await traffic();
      await pass(d);
      await traffic();
      expect(await pass(d)).toBeGreaterThan(0);
      await traffic();
      expect(await pass(d)).toBe(0);
      // A queue made by hand (its meta, one event), and xi's stream told it had one more entry than it had: the
      // XADD count and the watched streams' gains agree, so only the XSETID itself can give it away.
      await c.hset('bull:omicron:meta', 'version', 'bullmq:6');
      await c.xadd('bull:omicron:events', '*', 'event', 'added');
      const info = (await c.xinfo('STREAM', 'bull:xi:events')) as unknown[];
      const field = (k: string) => info[info.indexOf(k) + 1];
      await c.call('XSETID', 'bull:xi:events', String(field('last-generated-id')), 'ENTRIESADDED', String(Number(field('entries-added')) + 1));
      await expireOne();
      expect(await pass(d)).toBeGreaterThan(0);
      expect(names(d)).toContain('omicron');
    } finally {
      c.disconnect();
      close();
    }
  });

  it('a queue whose keys are DELeted while traffic runs on others is dropped at the next pass, by a look at the known metas instead of a SCAN', async () => {
    const { d, close } = discovery();
    const [mu, theta] = [bull.queue('mu'), bull.queue('theta')];
    await theta.add('x', {});
    const traffic = async () => {
      await mu.add('x', {});
      await expireOne();
    };
    try {
      await pass(d);
      await traffic();
      expect(await pass(d)).toBeGreaterThan(0);
      await traffic();
      expect(await pass(d)).toBe(0);
      expect(names(d)).toContain('theta');
      // As a clean-up script would (obliterate() pauses first, an XADD to theta's stream: that pass SCANs).
      const c = redis.client();
      await c.del(...(await c.keys('bull:theta:*')));
      c.disconnect();
      await traffic();
      expect(await pass(d)).toBe(0);
      expect(names(d)).not.toContain('theta');
      expect(names(d)).toContain('mu');
    } finally {
      close();
    }
  });
});
