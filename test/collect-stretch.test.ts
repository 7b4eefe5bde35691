// When whole collection cycles outgrow --collect-interval (a large fleet), the sidecar stretches its interval and
// says so, instead of calling its own good data stale (gauges blanked, up 0, /readyz 503).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stretchedInterval } from '../src/sidecar/stretch.js';
import { seriesKey } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

let redis: TestRedis;
const closers: Array<() => Promise<unknown>> = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await redis?.stop();
});

describe('interval stretching', () => {
  it('keeps the configured interval while cycles fit, stretches from good cycles only', () => {
    expect(stretchedInterval(5, 1, true)).toBe(5);
    expect(stretchedInterval(5, 5, true)).toBe(5);
    expect(stretchedInterval(5, 8, true)).toBe(12);
    expect(stretchedInterval(0.1, 0.33, true)).toBe(0.5);
    // A failed (hung, timed-out) collection must go stale on the configured clock.
    expect(stretchedInterval(5, 30, false)).toBe(5);
  });

  it('a cycle longer than the interval: the data stays served and ready, judged against the interval in force', async () => {
    // 10,000 fixed queues against an empty Redis: every cycle reads and renders them all, well over 0.1 s.
    const names = Array.from({ length: 10_000 }, (_, i) => `stretch-${i}`);
    const s = await testSidecar(redis.url, { ownPrefix: 'ql-stretch', queues: names.join(','), collectInterval: '0.1', events: false });
    closers.push(() => s.close());
    await s.refresh();
    const first = await s.scrape();
    const cycle = first.get('bullmq_exporter_cycle_duration_seconds') as number;
    const interval = first.get('bullmq_exporter_collect_interval_seconds') as number;
    // The sidecar's own clock says the cycle outgrew 0.1 s, and the interval in force is stretched from it.
    expect(cycle).toBeGreaterThan(0.1);
    expect(interval).toBe(stretchedInterval(0.1, cycle, true));

    // No collection runs now (the loops are not started). Wait until the data is older than 3 × the configured
    // interval, the old staleness limit; it is still within 3 × the interval in force unless this machine stalled.
    const lastSuccessAt = s.snapshot()!.lastSuccessAt;
    await sleep(Math.max(0, lastSuccessAt + 350 - Date.now()));
    const before = Date.now() - lastSuccessAt;
    const m = await s.scrape();
    const ready = await s.app.inject({ method: 'GET', url: '/readyz' });
    const after = Date.now() - lastSuccessAt;
    expect(before).toBeGreaterThan(300);
    const waiting = seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'stretch-0', state: 'waiting' });
    if (after <= 3 * interval * 1000) {
      expect(m.get(waiting)).toBe(0);
      expect(m.get('bullmq_exporter_up')).toBe(1);
      expect(ready.statusCode).toBe(200);
    } else {
      // This machine stalled past the stretched limit too: then the data is stale, and said to be.
      expect(m.get(waiting)).toBeUndefined();
    }
  }, 60_000);
});
