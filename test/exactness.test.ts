// Issue 13: the numbers an independent ground-truth run found wrong, each driven with real BullMQ against a real
// Redis and compared with what the test itself enqueued or what Redis holds.
import { Writable } from 'node:stream';
import { Queue as Queue5 } from 'bullmq5';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueueEventStats } from '../src/events/accounting.js';
import { decodeLimiterRecord } from '../src/collector/worker-limiter.js';
import { EventReader, type EventReaderOptions } from '../src/events/event-reader.js';
import { readEventAccounting } from '../src/events/read-back.js';
import { createLogger } from '../src/log/logger.js';
import type { QueuesResponse } from '../src/status/queue-view.js';
import { queueKey } from '../src/redis/keys.js';
import { type QueueRef } from '../src/domain/queue-ref.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { seriesKey } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';

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

/** A started reader following `queues`, once each has its event state in Redis; returns the reader. */
async function follow(ownPrefix: string, queues: QueueRef[], opts: Partial<EventReaderOptions> = {}): Promise<EventReader> {
  const r = reader(ownPrefix, opts);
  r.setQueues(queues);
  r.start();
  await waitFor('the queues registered', async () => (await Promise.all(queues.map((q) => statsOf(ownPrefix, q)))).every(Boolean));
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
    await follow(own, [q]);
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
  const flag = async (s: Awaited<ReturnType<typeof sidecar>>, queue: string) => {
    await s.refresh();
    // Absent while 0 (the series budget, docs/metrics.md).
    return gauge(await s.scrape(), 'bullmq_queue_rate_limited', queue) ?? 0;
  };

  it('binding: reads 1 once windows were seen filled to the max with jobs waiting; the learnt max is the real one, kept in Redis', async () => {
    const queue = bull.queue('limited');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = await sidecar();
    await queue.addBulk(Array.from({ length: 200 }, (_, i) => ({ name: 'j', data: { i } })));
    expect(await flag(s, 'limited'), 'no window open yet').toBe(0);

    // Jobs that never end and spare concurrency: each 1 s window BullMQ lets exactly 5 start, the rest wait.
    bull.worker('limited', () => gate, { concurrency: 500, limiter: { max: 5, duration: 1000 } });
    await waitFor('five jobs taken', async () => ((await queue.getJobCounts('active')).active ?? 0) >= 5);
    await waitFor('the flag set', async () => (await flag(s, 'limited')) === 1);
    const counts = await queue.getJobCounts('wait', 'active');
    expect(counts.wait ?? 0, 'jobs still held back').toBeGreaterThan(0);
    expect((counts.active ?? 0) % 5, 'BullMQ let exactly 5 start per window').toBe(0);
    const stored = decodeLimiterRecord(await raw.hget('queuelens:limiters', 'bull:limited'));
    expect(stored.max).toBe(5);
    expect(stored.plateaus).toBeGreaterThanOrEqual(2);
    release();
  });

  it('non-binding: a limiter whose counter never reaches its max reads 0 on every scrape, on two replicas', async () => {
    const queue = bull.queue('unbound');
    await queue.addBulk(Array.from({ length: 400 }, (_, i) => ({ name: 'j', data: { i } })));
    const s1 = await sidecar();
    // max 100 per second, but one job at a time of 100 ms: the counter reaches about 10 per window.
    bull.worker('unbound', () => new Promise((r) => setTimeout(r, 100)), { concurrency: 1, limiter: { max: 100, duration: 1000 } });
    await waitFor('a window open', async () => Number(await raw.pttl('bull:unbound:limiter')) > 0);
    let s2: Awaited<ReturnType<typeof sidecar>> | undefined;
    for (let look = 0; look < 12; look++) {
      // The second replica starts half-way, with nothing learnt in its own memory.
      if (look === 6) s2 = await sidecar();
      expect(await flag(s1, 'unbound'), `replica 1, look ${look}`).toBe(0);
      if (s2) expect(await flag(s2, 'unbound'), `replica 2, look ${look}`).toBe(0);
      expect(Number(await raw.get('bull:unbound:limiter')), 'the counter stays below the max').toBeLessThan(100);
      await new Promise((r) => setTimeout(r, 150));
    }
    expect((await queue.getJobCounts('wait')).wait, 'jobs waited throughout').toBeGreaterThan(0);
    await queue.pause();
  });

  it('two replicas read the same record: a replica that never looked before agrees with one that learnt the limiter', async () => {
    const queue = bull.queue('limited-replicas');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await queue.addBulk(Array.from({ length: 200 }, (_, i) => ({ name: 'j', data: { i } })));
    const s1 = await sidecar();
    bull.worker('limited-replicas', () => gate, { concurrency: 500, limiter: { max: 5, duration: 1000 } });
    await waitFor('replica 1 sets the flag', async () => (await flag(s1, 'limited-replicas')) === 1);
    const s2 = await sidecar();
    // Both look at one window: the counter is 5 in every window, so either reads 1 unless the window just ended.
    const both = await waitFor('both replicas looked inside one live window', async () => {
      const a = await flag(s1, 'limited-replicas');
      const b = await flag(s2, 'limited-replicas');
      const ttl = Number(await raw.pttl('bull:limited-replicas:limiter'));
      return ttl > 0 && Number(await raw.get('bull:limited-replicas:limiter')) === 5 && [a, b];
    });
    expect(both).toEqual([1, 1]);
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

async function entriesAdded(q: QueueRef): Promise<number> {
  const info = (await raw.call('XINFO', 'STREAM', queueKey(q, 'events'))) as unknown[];
  return Number(info[info.indexOf('entries-added') + 1]);
}

async function caughtUp(own: string, q: QueueRef): Promise<QueueEventStats> {
  return waitFor(`reader caught up on ${q.name}`, async () => {
    const st = await statsOf(own, q);
    return st && st.reader.read + st.reader.lost === (await entriesAdded(q)) && st;
  });
}

function histCount(s: QueueEventStats, histogram: string, label: string): number {
  return s.histograms.filter((h) => h.histogram === histogram && h.label === label).reduce((a, h) => a + h.count, 0);
}

describe('item 2: drained jobs never starve another queue of its histograms', () => {
  /** 300 jobs nobody runs, then drain(): no per-job event, so the reader keeps tracking 300 ghosts. */
  async function ghosts(own: string, name: string): Promise<QueueRef> {
    const q: QueueRef = { prefix: 'bull', name };
    const queue = bull.queue(name);
    await queue.addBulk(Array.from({ length: 300 }, (_, i) => ({ name: 'g', data: { i } })));
    await caughtUp(own, q);
    await queue.drain();
    expect(await queue.count()).toBe(0);
    return q;
  }

  /** 150 jobs at once, then a worker runs them all: every one must be observed. */
  async function healthy(own: string, name: string): Promise<QueueEventStats> {
    const q: QueueRef = { prefix: 'bull', name };
    const queue = bull.queue(name);
    await queue.addBulk(Array.from({ length: 150 }, (_, i) => ({ name: 'h', data: { i } })));
    await caughtUp(own, q);
    bull.worker(name, async () => undefined, { concurrency: 10 });
    await waitFor('150 completed', async () => (await queue.getJobCounts('completed')).completed === 150);
    return caughtUp(own, q);
  }

  it("a queue's ghosts give way to another queue's live jobs, and each eviction is counted on the queue that lost it", async () => {
    const own = 'ql-ghosts-fair';
    const g: QueueRef = { prefix: 'bull', name: 'ghosts' };
    const h: QueueRef = { prefix: 'bull', name: 'healthy' };
    // A cap of 300 tracked jobs for the whole reader, and no reconciliation pass during the test.
    await follow(own, [g, h], { lifecycle: { maxInFlight: 300 }, maintenanceMs: 3_600_000 });
    await ghosts(own, g.name);
    const s = await healthy(own, h.name);
    expect(histCount(s, 'wait', 'first')).toBe(150);
    expect(histCount(s, 'processing', 'completed')).toBe(150);
    expect(histCount(s, 'e2e', 'completed')).toBe(150);
    expect(s.reader.evicted).toBe(0);
    // The cap was full of ghosts when the 150 arrived: each arrival evicted one ghost, counted on the ghosts' queue.
    const gs = await waitFor('the evictions committed on the ghosts queue', async () => {
      const st = await statsOf(own, g);
      return st && st.reader.evicted === 150 && st;
    });
    expect(gs.reader.evicted).toBe(150);
  });

  it('ghosts are reconciled against Redis (gone) instead of waiting hours to age out', async () => {
    const own = 'ql-ghosts-reconcile';
    const g: QueueRef = { prefix: 'bull', name: 'ghosts2' };
    const h: QueueRef = { prefix: 'bull', name: 'healthy2' };
    // The reader's log says how many tracked jobs a reconciliation pass found gone.
    let forgotten = 0;
    const lines = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) {
          if (!line.includes('removed without an event')) continue;
          const entry = JSON.parse(line) as { queue: string; gone: number };
          if (entry.queue === g.name) forgotten += entry.gone;
        }
        done();
      },
    });
    await follow(own, [g, h], { lifecycle: { maxInFlight: 300 }, maintenanceMs: 200, log: createLogger({ level: 'info', destination: lines }) });
    await ghosts(own, g.name);
    await waitFor('a reconciliation pass forgot the 300 drained jobs', () => forgotten === 300);
    const s = await healthy(own, h.name);
    expect(histCount(s, 'wait', 'first')).toBe(150);
    expect(histCount(s, 'e2e', 'completed')).toBe(150);
    expect(s.reader.evicted).toBe(0);
    expect((await statsOf(own, g))!.reader.evicted, 'nothing was evicted: the ghosts were already forgotten').toBe(0);
  });
});

describe('item 1: a queue born after the sidecar started', () => {
  it('reads what its stream still holds and counts exactly what was trimmed as lost; queues there before are not replayed', async () => {
    const own = 'ql-newborn';
    const old: QueueRef = { prefix: 'bull', name: 'elder' };
    const elder = bull.queue(old.name);
    await elder.addBulk(Array.from({ length: 20 }, (_, i) => ({ name: 'e', data: { i } })));
    const r = reader(own);
    r.setQueues([old]);
    r.start();
    const before = await waitFor('the elder queue registered', () => statsOf(own, old));
    // There before the reader watched the prefix: its history is neither counted nor lost.
    expect(total(before, 'added')).toBe(0);
    expect(before.reader.lost).toBe(0);

    // Born after, with a burst that its tiny stream trims before anyone reads it.
    const q: QueueRef = { prefix: 'bull', name: 'newborn' };
    const born = bull.queue(q.name, { streams: { events: { maxLen: 50 } } });
    await born.waitUntilReady();
    await waitFor('the stream retention written to meta', async () => (await raw.hget('bull:newborn:meta', 'opts.maxLenEvents')) === '50');
    await born.addBulk(Array.from({ length: 400 }, (_, i) => ({ name: 'n', data: { i } })));
    const info = (await raw.call('XINFO', 'STREAM', queueKey(q, 'events'))) as unknown[];
    const field = (k: string) => Number(info[info.indexOf(k) + 1]);
    const trimmed = field('entries-added') - field('length');
    expect(trimmed, 'the burst was trimmed before discovery').toBeGreaterThan(0);
    const retained = (await raw.xrange(queueKey(q, 'events'), '-', '+')) as Array<[string, string[]]>;
    const retainedAdded = retained.filter(([, f]) => f[f.indexOf('event') + 1] === 'added').length;

    r.setQueues([old, q]);
    const s = await caughtUp(own, q);
    expect(s.reader.lost).toBe(trimmed);
    expect(s.reader.read).toBe(retained.length);
    expect(total(s, 'added')).toBe(retainedAdded);
    expect((await statsOf(own, old))!.reader.lost).toBe(0);
  });

  it('is found at the next collection when a worker connects for it, long before the next discovery pass', async () => {
    const s = await testSidecar(redis.url, { collectInterval: '0.2', discoveryInterval: '3600', ownPrefix: 'ql-fastfind' });
    closers.push(() => s.close());
    await s.start();
    const passes = s.discovery.completedPasses();
    const queue = bull.queue('found-fast');
    await queue.addBulk(Array.from({ length: 5 }, (_, i) => ({ name: 'f', data: { i } })));
    bull.worker('found-fast', async () => undefined);
    await waitFor('the queue discovered', () => s.discovery.queues().some((q) => q.name === 'found-fast'));
    const series = await waitFor('its 5 completions counted', async () => {
      const m = await s.scrape();
      return gauge(m, 'bullmq_jobs_completed_total', 'found-fast') === 5 && m;
    });
    expect(gauge(series, 'bullmq_jobs_added_total', 'found-fast')).toBe(5);
    expect(gauge(series, 'bullmq_exporter_events_lost_total', 'found-fast')).toBe(0);
    expect(s.discovery.completedPasses(), 'no SCAN pass ran meanwhile').toBe(passes);
  });
});

describe('item 1: the first queue under a prefix of a fresh install', () => {
  // A fresh Redis, a prefix per test: the sidecar's first sync finds the prefix empty, the queue appears later with a burst
  // that its tiny stream trims before the reader sees it.
  let fresh: TestRedis;
  let freshRaw: Redis;
  let freshBull: BullFixtures;
  beforeAll(async () => {
    fresh = await startTestRedis();
    freshRaw = fresh.client();
    freshBull = new BullFixtures(fresh);
  });
  afterAll(async () => {
    await freshBull?.close();
    await fresh?.stop();
  });

  const stats = async (own: string, q: QueueRef) => (await readEventAccounting(freshRaw, own)).find((x) => x.queue.name === q.name)?.stats;
  const streamInfo = async (q: QueueRef) => {
    const info = (await freshRaw.call('XINFO', 'STREAM', queueKey(q, 'events'))) as unknown[];
    return { added: Number(info[info.indexOf('entries-added') + 1]), length: Number(info[info.indexOf('length') + 1]) };
  };
  const caught = (own: string, q: QueueRef) =>
    waitFor(`reader caught up on ${q.name}`, async () => {
      const st = await stats(own, q);
      return st && st.reader.read + st.reader.lost === (await streamInfo(q)).added && st;
    });
  async function freshSidecar(own: string, prefix: string) {
    // No timer finds the queue during the test: each test runs the discovery (a SCAN pass, or a collection
    // that sees the worker's connection) itself, after the burst.
    const s = await testSidecar(fresh.url, { ownPrefix: own, prefixes: prefix, collectInterval: '3600', discoveryInterval: '3600' });
    closers.push(() => s.close());
    await s.start();
    // The reader's first sync ran (on an empty prefix): installedAt is written there.
    await waitFor('the reader synced once', async () => (await freshRaw.hget(`${own}:events:meta`, 'installedAt')) !== null);
    return s;
  }

  /** The sidecar on the empty prefix, then the queue's first Queue instance, its stream capped at 20 entries. */
  async function freshStart(own: string, q: QueueRef) {
    const s = await freshSidecar(own, q.prefix);
    const queue = freshBull.queue(q.name, { prefix: q.prefix, streams: { events: { maxLen: 20 } } });
    await queue.waitUntilReady();
    await waitFor('the stream retention written to meta', async () => (await freshRaw.hget(queueKey(q, 'meta'), 'opts.maxLenEvents')) === '20');
    return { s, q, queue };
  }

  it('producer only: what the stream still holds is read, exactly what was trimmed is counted lost', async () => {
    const own = 'ql-fresh-producer';
    const { s, q, queue } = await freshStart(own, { prefix: 'fresh-producer', name: 'fresh burst producer' });
    await queue.addBulk(Array.from({ length: 500 }, (_, i) => ({ name: 'n', data: { i } })));
    const info = await streamInfo(q);
    expect(info.added - info.length, 'the burst was trimmed before discovery').toBeGreaterThan(0);
    const retained = (await freshRaw.xrange(queueKey(q, 'events'), '-', '+')) as Array<[string, string[]]>;
    const retainedAdded = retained.filter(([, f]) => f[f.indexOf('event') + 1] === 'added').length;

    await s.discovery.runPass();
    await s.refresh();
    const st = await caught(own, q);
    expect(st.reader.lost).toBe(info.added - info.length);
    expect(st.reader.read).toBe(info.length);
    expect(total(st, 'added')).toBe(retainedAdded);
  });

  it('with a worker: the retained entries are read, exactly the trimmed ones counted lost', async () => {
    const own = 'ql-fresh-worker';
    const { s, q, queue } = await freshStart(own, { prefix: 'fresh-worker', name: 'fresh burst worker' });
    const n = 300;
    freshBull.worker(q.name, async () => undefined, { prefix: q.prefix, concurrency: 5 });
    await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'n', data: { i } })));
    await waitFor('every job completed', async () => (await queue.getJobCounts('completed')).completed === n);
    const info = await streamInfo(q);
    expect(info.added - info.length, 'the stream was trimmed').toBeGreaterThan(0);
    const retained = (await freshRaw.xrange(queueKey(q, 'events'), '-', '+')) as Array<[string, string[]]>;
    const retainedOf = (event: string) => retained.filter(([, f]) => f[f.indexOf('event') + 1] === event).length;

    await s.refresh(); // the collection sees the worker's connection: the queue is found here
    const st = await caught(own, q);
    expect(st.reader.lost).toBe(info.added - info.length);
    expect(st.reader.read).toBe(info.length);
    expect(total(st, 'completed')).toBe(retainedOf('completed'));
    expect(total(st, 'completed'), 'some completions were still retained').toBeGreaterThan(0);
  });
});

describe('item 4: a flow parent waits from when its last child finished', () => {
  it('its oldest-waiting age counts from the last child finish, not from the parent creation hours ago', async () => {
    const created = (await redisMs()) - 7_200_000;
    await bull.flow().add({
      name: 'parent',
      queueName: 'flow-parents',
      data: {},
      opts: { timestamp: created },
      children: [1, 2].map((i) => ({ name: 'child', queueName: 'flow-kids', data: { i } })),
    });
    const parents = bull.queue('flow-parents');
    bull.worker('flow-kids', async () => 'ok');
    await waitFor('the parent ready', async () => (await parents.getJobCounts('wait')).wait === 1);
    // Ground truth: the children's finish times, as BullMQ stored them.
    const kids = bull.queue('flow-kids');
    const done = await kids.getJobs(['completed']);
    expect(done).toHaveLength(2);
    const readyAt = Math.max(...done.map((j) => j.finishedOn!));
    const s = await sidecar();
    const before = await redisMs();
    await s.refresh();
    const after = await redisMs();
    const age = gauge(await s.scrape(), 'bullmq_queue_oldest_waiting_age_seconds', 'flow-parents')!;
    expect(age * 1000).toBeGreaterThanOrEqual(before - readyAt);
    expect(age * 1000).toBeLessThanOrEqual(after - readyAt);
    expect(age).toBeLessThan(7000);
  });
});

describe('item 7: the smaller wrong numbers', () => {
  it('a debounce with replace counts its deduplication under the job name, not __other__', async () => {
    const own = 'ql-debounce';
    const q: QueueRef = { prefix: 'bull', name: 'debounce' };
    await follow(own, [q], { lifecycle: { jobNameLabel: true } });
    const queue = bull.queue(q.name);
    const opts = { delay: 60_000, deduplication: { id: 'd1', ttl: 60_000, extend: true, replace: true } };
    await queue.add('digest', { v: 1 }, opts);
    await queue.add('digest', { v: 2 }, opts);
    expect(await queue.getDelayedCount(), 'the second replaced the first').toBe(1);
    const s = await caughtUp(own, q);
    const named = (counter: string, jobName: string) =>
      s.counters.filter((c) => c.counter === counter && c.jobName === jobName).reduce((a, c) => a + c.value, 0);
    expect(named('deduplicated', 'digest')).toBe(1);
    expect(named('deduplicated', '__other__')).toBe(0);
    expect(named('added', 'digest')).toBe(2);
  });

  it("after obliterate and re-create under the same name, the new stream's trimmed entries are all counted lost", async () => {
    const own = 'ql-phoenix';
    const q: QueueRef = { prefix: 'bull', name: 'phoenix' };
    const s = await testSidecar(redis.url, { collectInterval: '0.2', discoveryInterval: '3600', ownPrefix: own });
    closers.push(() => s.close());
    await s.start();
    const first = bull.queue(q.name);
    await first.addBulk(Array.from({ length: 100 }, (_, i) => ({ name: 'p', data: { i } })));
    await s.refresh();
    const before = await caughtUp(own, q);
    expect(total(before, 'added')).toBe(100);
    expect(before.reader.lost).toBe(0);

    await first.obliterate({ force: true });
    await waitFor(
      'the obliterated queue dropped and its event state restarted',
      async () => !s.discovery.queues().some((x) => x.name === q.name) && (await raw.hget(`${own}:events:q:bull:phoenix`, 'r|cursor')) === '0-0',
    );

    const again = bull.queue(q.name, { streams: { events: { maxLen: 20 } } });
    await again.waitUntilReady();
    await waitFor('the small retention in meta', async () => (await raw.hget('bull:phoenix:meta', 'opts.maxLenEvents')) === '20');
    await again.addBulk(Array.from({ length: 300 }, (_, i) => ({ name: 'p', data: { i } })));
    const info = (await raw.call('XINFO', 'STREAM', queueKey(q, 'events'))) as unknown[];
    const field = (k: string) => Number(info[info.indexOf(k) + 1]);
    const trimmed = field('entries-added') - field('length');
    expect(trimmed).toBeGreaterThan(0);
    const retained = (await raw.xrange(queueKey(q, 'events'), '-', '+')) as Array<[string, string[]]>;
    const retainedAdded = retained.filter(([, f]) => f[f.indexOf('event') + 1] === 'added').length;

    const readBefore = (await statsOf(own, q))!.reader.read;
    await s.refresh();
    // Caught up on the new stream: everything it still holds read, on top of what the old one gave.
    const after = await waitFor('the re-created queue read', async () => {
      const st = await statsOf(own, q);
      return st && st.reader.read === readBefore + retained.length && st;
    });
    expect(after.reader.lost).toBe(trimmed);
    expect(total(after, 'added')).toBe(100 + retainedAdded);
  });

  it('the reader lag of a caught-up queue grows within seconds of its leader going silent, not after 11 s', async () => {
    const own = 'ql-deadleader';
    const q: QueueRef = { prefix: 'bull', name: 'dead-leader' };
    const proxy = await startTcpProxy(redis.port);
    closers.push(() => proxy.stop());
    // Default reader timings; a long lease so that nobody takes over while the leader is silent.
    await follow(own, [q], { redisUrl: `redis://127.0.0.1:${proxy.port}`, leaseMs: 60_000, blockMs: undefined });
    await bull.queue(q.name).add('j', {});
    await caughtUp(own, q);
    await waitFor('the shard heartbeat written', async () => Object.keys(await raw.hgetall(`${own}:events:meta`)).some((f) => f.startsWith('hb|')));
    proxy.stall();
    // Every commit and heartbeat of the silent leader came before this moment (Redis clock).
    const silentFrom = await redisMs();
    await waitFor('6 s of silence on the Redis clock', async () => (await redisMs()) - silentFrom >= 6000, 30_000, 200);
    const before = await redisMs();
    const lag = (await statsOf(own, q))!.reader.lagSeconds;
    // Aged from its last sign of life, less a grace of 2 heartbeats plus a blocking read (3 s by default).
    expect(lag).toBeGreaterThanOrEqual((before - silentFrom) / 1000 - 3 - 0.002);
    proxy.resume();
  });

  it('keepLastIfActive: the add kept for later counts as added, only the ones it replaced as deduplicated', async () => {
    const own = 'ql-keeplast';
    const q: QueueRef = { prefix: 'bull', name: 'keeplast' };
    await follow(own, [q]);
    const queue = bull.queue(q.name);
    const dedup = { deduplication: { id: 'k', keepLastIfActive: true } };
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const w = bull.worker(q.name, async (job) => (job.data.n === 0 ? gate : undefined));
    await queue.add('k', { n: 0 }, dedup);
    await waitFor('the first job active', async () => (await queue.getJobCounts('active')).active === 1);
    for (const n of [1, 2, 3]) await queue.add('k', { n }, dedup);
    release();
    // Ground truth: BullMQ created the first job and kept the last add (n = 3) for after it; 1 and 2 were dropped.
    await waitFor('both created jobs completed', async () => (await queue.getJobCounts('completed')).completed === 2);
    const ran = (await queue.getJobs(['completed'])).map((j) => j.data.n as number).sort();
    expect(ran).toEqual([0, 3]);
    await w.close();
    const s = await caughtUp(own, q);
    expect(total(s, 'added')).toBe(2);
    expect(total(s, 'deduplicated')).toBe(2);
    expect(total(s, 'completed')).toBe(2);
  });

  it('a job completed after job.retry() gets its end-to-end observation', async () => {
    const own = 'ql-retry-e2e';
    const q: QueueRef = { prefix: 'bull', name: 'retry-e2e' };
    await follow(own, [q]);
    const queue = bull.queue(q.name);
    let runs = 0;
    const w = bull.worker(q.name, async () => {
      runs += 1;
      if (runs === 1) throw new Error('first run fails');
    });
    const job = await queue.add('r', {}, { attempts: 1 });
    await waitFor('failed', async () => (await job.getState()) === 'failed');
    await job.retry('failed');
    await waitFor('completed after the retry', async () => (await job.getState()) === 'completed');
    await w.close();
    const s = await caughtUp(own, q);
    // Ground truth: one failure (its end-to-end observed then), then one completion after the retry.
    expect(total(s, 'failed')).toBe(1);
    expect(total(s, 'completed')).toBe(1);
    expect(histCount(s, 'e2e', 'failed')).toBe(1);
    expect(histCount(s, 'e2e', 'completed')).toBe(1);
  });
});
