// A network stall between the sidecar and Redis (no connection closed, nothing answers): collections time out
// instead of hanging, /health turns 503, and everything recovers when the link thaws.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { parsePromText, seriesKey } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';

let redis: TestRedis;
let proxy: TcpProxy;

beforeAll(async () => {
  redis = await startTestRedis();
  const bull = new BullFixtures(redis);
  await bull.queue('q').add('j', {});
  await bull.close();
  proxy = await startTcpProxy(redis.port);
});

afterAll(async () => {
  await proxy?.stop();
  await redis?.stop();
});

describe('network stall', () => {
  it('times out, reports unavailable, and recovers when the link thaws', async () => {
    const s = await testSidecar(`redis://127.0.0.1:${proxy.port}`, { collectInterval: '0.5' });
    await s.start();
    const waiting = seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'q', state: 'waiting' });
    await waitFor('first collection', async () => (await s.scrape()).get(waiting) === 1);
    await waitFor('event counters', async () => (await s.scrape()).get(seriesKey('bullmq_jobs_added_total', { prefix: 'bull', queue: 'q' })) !== undefined);

    proxy.stall();
    const stalledAt = Date.now();
    await waitFor('503 while stalled', async () => (await s.app.inject({ url: '/health' })).statusCode === 503, 10_000);
    const during = parsePromText((await s.app.inject({ url: '/metrics' })).body);
    expect(during.get(waiting)).toBeUndefined();
    expect([...during.keys()].filter((k) => k.startsWith('bullmq_jobs_'))).toEqual([]);
    expect(during.get('bullmq_exporter_up')).toBe(0);
    // /metrics itself must keep answering at once while Redis hangs.
    const t = Date.now();
    await s.app.inject({ url: '/metrics' });
    expect(Date.now() - t).toBeLessThan(1000);
    expect(Date.now() - stalledAt).toBeLessThan(8000);

    proxy.resume();
    await waitFor('recovered', async () => (await s.app.inject({ url: '/health' })).statusCode === 200 && (await s.scrape()).get(waiting) === 1, 15_000);
    await s.close();
  }, 40_000);
});
