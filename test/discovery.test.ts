// Discovery: SCAN finds real queues only, under several prefixes, follows new and obliterated queues, and caps.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullFixtures } from './helpers/bullmq.js';
import { seriesKey, seriesOf } from './helpers/prom-text.js';
import { monitorCommands, startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

let redis: TestRedis;
let bull: BullFixtures;
const names = (s: { discovery: { queues(): readonly { prefix: string; name: string }[] } }) =>
  s.discovery
    .queues()
    .map((q) => `${q.prefix}/${q.name}`)
    .sort();

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  const a = bull.queue('alpha');
  await a.add('y', {}, { jobId: 'meta-ish' });
  await bull.queue('beta').add('x', {});
  await bull.queue('gamma', { prefix: 'other' }).add('x', {});
  const c = redis.client();
  // BullMQ 6 refuses ':' in custom ids, but older producers wrote such job hashes: `bull:alpha:evil:meta`
  // (job id "evil:meta") is a job, not a queue named "alpha:evil".
  await c.hset('bull:alpha:evil:meta', 'name', 'x', 'data', '{}', 'opts', '{}', 'timestamp', String(Date.now()), 'version', 'x');
  await c.hset('bull:fake:meta', 'owner', 'not bullmq'); // a hash that is not a queue's meta
  await c.set('bull:str:meta', 'x'); // not even a hash
  for (let i = 0; i < 300; i += 1) await c.set(`noise:${i}`, 'x'); // SCAN must page through unrelated keys
});

afterAll(async () => {
  await bull?.close();
  await redis?.stop();
});

describe('queue discovery', () => {
  it('finds only real queues, under every configured prefix', async () => {
    const s = await testSidecar(redis.url, { prefixes: 'bull,other' });
    await s.refresh();
    expect(names(s)).toEqual(['bull/alpha', 'bull/beta', 'other/gamma']);
    const m = await s.scrape();
    expect(m.get(seriesKey('bullmq_exporter_queues', { prefix: 'bull' }))).toBe(2);
    expect(m.get(seriesKey('bullmq_exporter_queues', { prefix: 'other' }))).toBe(1);
    expect(m.get(seriesKey('bullmq_queue_jobs', { prefix: 'other', queue: 'gamma', state: 'waiting' }))).toBe(1);
    await s.close();
  });

  it('a pass confirms only the queues it did not know: no HMGET per known queue, while a new one is still checked', async () => {
    const s = await testSidecar(redis.url);
    await s.refresh();
    expect(names(s)).toEqual(['bull/alpha', 'bull/beta']);
    const epsilon = bull.queue('epsilon');
    await epsilon.add('x', {});
    const seen: string[][] = [];
    const monitor = await monitorCommands(redis, (args) => seen.push(args));
    await s.discovery.runPass();
    // Ground truth: a command MONITOR saw after the pass (the pass's own are in order before it).
    const marker = redis.client();
    await marker.ping('after-pass');
    marker.disconnect();
    await (async () => {
      for (let i = 0; i < 200 && !seen.some((a) => a.includes('after-pass')); i += 1) await new Promise((r) => setTimeout(r, 25));
    })();
    monitor.stop();
    expect(seen.some((a) => a.includes('after-pass'))).toBe(true);
    const confirms = seen.filter((a) => a[0]?.toLowerCase() === 'hmget').map((a) => a[1]);
    expect(confirms).toContain('bull:epsilon:meta');
    expect(confirms).not.toContain('bull:alpha:meta');
    expect(confirms).not.toContain('bull:beta:meta');
    expect(names(s)).toEqual(['bull/alpha', 'bull/beta', 'bull/epsilon']);
    await epsilon.obliterate({ force: true });
    await s.close();
  });

  it('picks up new queues and drops obliterated ones', async () => {
    const s = await testSidecar(redis.url);
    await s.refresh();
    expect(names(s)).toEqual(['bull/alpha', 'bull/beta']);

    const delta = bull.queue('delta');
    await delta.add('x', {});
    await s.discovery.runPass();
    expect(names(s)).toContain('bull/delta');

    await delta.obliterate({ force: true });
    // The next collection notices the missing meta hash at once, before the next SCAN pass.
    await s.refresh();
    expect(names(s)).not.toContain('bull/delta');
    const m = await s.scrape();
    expect(seriesOf(m, 'bullmq_queue_jobs').some((k) => k.includes('"delta"'))).toBe(false);
    expect(m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'beta', state: 'waiting' }))).toBe(1);
    await s.close();
  });

  it('caps the number of queues and reports how many were dropped', async () => {
    const s = await testSidecar(redis.url, { prefixes: 'bull,other', maxQueues: '2' });
    await s.refresh();
    expect(names(s)).toEqual(['bull/alpha', 'bull/beta']);
    const m = await s.scrape();
    expect(m.get(seriesKey('bullmq_exporter_queues_dropped', { reason: 'max_queues' }))).toBe(1);
    await s.close();
  });

  it('uses a fixed queue list without SCAN, even for queues that do not exist yet', async () => {
    const s = await testSidecar(redis.url, { queues: 'beta,later' });
    const scansBefore = await scanCalls();
    await s.refresh();
    expect(await scanCalls()).toBe(scansBefore);
    expect(names(s)).toEqual(['bull/beta', 'bull/later']);
    const m = await s.scrape();
    expect(m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'later', state: 'waiting' }))).toBe(0);
    await s.close();
  });
});

async function scanCalls(): Promise<number> {
  const info = await redis.client().info('commandstats');
  const m = /cmdstat_scan:calls=(\d+)/.exec(info);
  return m ? Number(m[1]) : 0;
}
