// Issue 13: the numbers an independent ground-truth run found wrong, each driven with real BullMQ against a real
// Redis and compared with what the test itself enqueued or what Redis holds.
import { Queue as Queue5 } from 'bullmq5';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueueEventStats } from '../src/events/accounting.js';
import { EventReader, type EventReaderOptions } from '../src/events/event-reader.js';
import { readEventAccounting } from '../src/events/read-back.js';
import { createLogger } from '../src/log/logger.js';
import type { QueuesResponse } from '../src/status/queue-view.js';
import { type QueueRef } from '../src/redis/keys.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { seriesKey } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

const log = createLogger({ level: 'silent' });
let redis: TestRedis;
let raw: Redis;
let bull: BullFixtures;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startTestRedis();
  raw = redis.client();
  bull = new BullFixtures(redis);
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await bull?.close();
  await redis?.stop();
});

async function sidecar(raw: Record<string, unknown> = {}) {
  const s = await testSidecar(redis.url, { events: 'false', ...raw });
  closers.push(() => s.close());
  return s;
}

function reader(ownPrefix: string, opts: Partial<EventReaderOptions> = {}): EventReader {
  const r = new EventReader({ redisUrl: redis.url, ownPrefix, log, leaseMs: 2000, blockMs: 100, ...opts });
  closers.push(() => r.close());
  return r;
}

async function statsOf(own: string, q: QueueRef): Promise<QueueEventStats | undefined> {
  return (await readEventAccounting(raw, own)).find((x) => x.queue.prefix === q.prefix && x.queue.name === q.name)?.stats;
}

function total(s: QueueEventStats, counter: string): number {
  return s.counters.filter((c) => c.counter === counter).reduce((a, c) => a + c.value, 0);
}

async function redisMs(): Promise<number> {
  const [sec, usec] = await raw.time();
  return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
}

const gauge = (series: Map<string, number>, name: string, queue: string, extra: Record<string, string> = {}) =>
  series.get(seriesKey(name, { prefix: 'bull', queue, ...extra }));

describe('item 8: a stall is never counted as a retry', () => {
  it('pairs "waiting prev=active" with the "stalled" right after it even when their ids are 51 ms apart', async () => {
    const own = 'ql-stallpair';
    const q: QueueRef = { prefix: 'bull', name: 'stallpair' };
    const r = reader(own);
    r.setQueues([q]);
    r.start();
    await waitFor('the queue registered', () => statsOf(own, q));
    // What BullMQ's moveStalledJobsToWait writes, with the ids Redis 7.0 gave one mass-stall run.
    const t = (await redisMs()) + 10;
    const stream = 'bull:stallpair:events';
    const xadd = (ms: number, ...fields: string[]) => raw.xadd(stream, `${ms}-0`, ...fields);
    await xadd(t, 'event', 'added', 'jobId', '1', 'name', 'j');
    await xadd(t + 1, 'event', 'active', 'jobId', '1', 'prev', 'waiting');
    await xadd(t + 100, 'event', 'waiting', 'jobId', '1', 'prev', 'active');
    await xadd(t + 151, 'event', 'stalled', 'jobId', '1');
    await xadd(t + 200, 'event', 'active', 'jobId', '1', 'prev', 'waiting');
    await xadd(t + 300, 'event', 'completed', 'jobId', '1', 'returnvalue', 'null');
    const s = await waitFor('all six entries read', async () => {
      const st = await statsOf(own, q);
      return st && st.reader.read === 6 && st;
    });
    expect(total(s, 'stalled')).toBe(1);
    expect(total(s, 'retried')).toBe(0);
    expect(total(s, 'completed')).toBe(1);
  });
});

describe('item 5: workers whose name Redis refuses', () => {
  it('counts busy workers named with a space, unicode or a quote', async () => {
    const names = ['my worker', 'naïve ✓', 'it"s'];
    const queue = bull.queue('named');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    for (const name of names) bull.worker('named', () => gate, { name, concurrency: 1 });
    for (let i = 0; i < names.length; i++) await queue.add('j', { i });
    await waitFor('every worker holds a job', async () => (await queue.getJobCounts('active')).active === names.length);
    // Ground truth: the distinct lock tokens of the active jobs, i.e. the workers running them.
    const active = await queue.getActive();
    const owners = new Set(await Promise.all(active.map(async (j) => String(await raw.get(`bull:named:${j.id}:lock`)).replace(/:[^:]*$/, ''))));
    expect(owners.size).toBe(names.length);

    const s = await sidecar();
    await s.refresh();
    expect(gauge(await s.scrape(), 'bullmq_queue_workers', 'named')).toBe(owners.size);
    release();
  });
});

describe('item 3: the Worker limiter option sets the rate-limited flag', () => {
  it('is 1 while the window counter is at the limiter max and jobs wait, with spare concurrency and jobs running', async () => {
    const queue = bull.queue('limited');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = await sidecar();
    for (let i = 0; i < 20; i++) await queue.add('j', { i });
    await s.refresh();
    expect(gauge(await s.scrape(), 'bullmq_queue_rate_limited', 'limited'), 'no window open yet').toBe(0);

    // A window long enough that it cannot expire during the test: 5 jobs start, 15 are held back by BullMQ.
    bull.worker('limited', () => gate, { concurrency: 50, limiter: { max: 5, duration: 600_000 } });
    await waitFor('five jobs taken', async () => (await queue.getJobCounts('active')).active === 5);
    const counter = Number(await raw.get('bull:limited:limiter'));
    const counts = await queue.getJobCounts('wait', 'active');
    expect(counter).toBe(5);
    expect(counts.wait).toBe(15);
    expect(counts.active).toBe(5);
    await s.refresh();
    expect(gauge(await s.scrape(), 'bullmq_queue_rate_limited', 'limited')).toBe(1);
    release();
  });
});

describe('item 6: paused queues', () => {
  it('BullMQ 5: the oldest-waiting age of a paused queue counts from the head job, not 0', async () => {
    const connection = bull.connection;
    const q5 = new Queue5('paused5', { connection });
    closers.push(() => q5.close());
    const ts = (await redisMs()) - 120_000;
    await q5.add('old', {}, { timestamp: ts });
    await q5.add('new', {});
    await q5.pause();
    expect(await raw.llen('bull:paused5:paused'), 'BullMQ 5 moved the jobs to its paused list').toBe(2);
    const s = await sidecar();
    const before = await redisMs();
    await s.refresh();
    const after = await redisMs();
    const series = await s.scrape();
    expect(gauge(series, 'bullmq_queue_paused', 'paused5')).toBe(1);
    expect(gauge(series, 'bullmq_queue_jobs', 'paused5', { state: 'waiting' })).toBe(2);
    const age = gauge(series, 'bullmq_queue_oldest_waiting_age_seconds', 'paused5')!;
    expect(age * 1000).toBeGreaterThanOrEqual(before - ts);
    expect(age * 1000).toBeLessThanOrEqual(after - ts);
  });

  it('a paused queue keeps its true age but is neither critical on the status page nor degraded on /health', async () => {
    const queue = bull.queue('paused6');
    const ts = (await redisMs()) - 7_200_000;
    await queue.add('old', {}, { timestamp: ts });
    await queue.pause();
    const s = await sidecar({ healthMaxOldestAge: '60', healthMinWorkers: '1' });
    await s.refresh();
    const age = gauge(await s.scrape(), 'bullmq_queue_oldest_waiting_age_seconds', 'paused6')!;
    expect(age).toBeGreaterThan(7200);
    const body = (await s.app.inject({ url: '/api/queues' })).json() as QueuesResponse;
    const view = body.queues.find((v) => v.name === 'paused6')!;
    expect(view.health.reasons.map((r) => r.code)).toEqual(['paused']);
    expect(view.health.status).toBe('ok');
    const health = (await s.app.inject({ url: '/health' })).json() as { degradedQueues?: Array<{ queue: string }> };
    expect(health.degradedQueues?.map((d) => d.queue) ?? []).not.toContain('paused6');
  });
});
