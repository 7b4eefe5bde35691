// Every queue-state gauge against ground truth: queues built with real BullMQ producers and workers in every
// state, checked against what the test enqueued (and against BullMQ's own getJobCounts()).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { seriesKey, type Series } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

let redis: TestRedis;
let bull: BullFixtures;
let sidecar: Awaited<ReturnType<typeof testSidecar>>;
let series: Series;
let before: number;
let after: number;
let busyActiveAt: number;
let t0: number;
let releaseBusy: () => void;

const HOUR = 3_600_000;
const g = (name: string, queue: string, extra: Record<string, string> = {}) => series.get(seriesKey(name, { prefix: 'bull', queue, ...extra }));

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  const now = Date.now();
  t0 = now;

  // waits: 4 waiting (the head enqueued 120 s ago), 2 prioritized, 5 delayed of which 2 are overdue. No worker.
  const waits = bull.queue('waits');
  await waits.add('old', {}, { timestamp: now - 120_000 });
  for (let i = 0; i < 3; i += 1) await waits.add('w', { i });
  for (let i = 0; i < 2; i += 1) await waits.add('p', { i }, { priority: 5 });
  for (let i = 0; i < 2; i += 1) await waits.add('overdue', { i }, { timestamp: now - 60_000, delay: 1000 });
  for (let i = 0; i < 3; i += 1) await waits.add('later', { i }, { delay: HOUR });

  // prio-only: nothing in wait, so the head of prioritized decides the age (priority 1 beats 2).
  const prio = bull.queue('prio-only');
  await prio.add('second', {}, { priority: 2, timestamp: now - 5_000 });
  await prio.add('first', {}, { priority: 1, timestamp: now - 30_000 });

  // delayed-eligible: a waiting job that was delayed: its age counts from timestamp + delay, not from timestamp.
  const de = bull.queue('delayed-eligible');
  const job = await de.add('d', {}, { delay: 50, timestamp: now - 40_000 });
  await waitFor('promotion', async () => {
    await de.promoteJobs();
    return (await job.getState()) === 'waiting';
  });

  // finished: 3 completed, 2 failed, then the worker is gone.
  const finished = bull.queue('finished');
  for (let i = 0; i < 5; i += 1) await finished.add('f', { fail: i >= 3 });
  const fw = bull.worker('finished', async (j) => {
    if (j.data.fail) throw new Error('boom');
  });
  await waitFor('finished queue drained', async () => {
    const c = await finished.getJobCounts('completed', 'failed');
    return c.completed === 3 && c.failed === 2;
  });
  await fw.close();

  // busy: two workers (one named), one job running until the end of the test.
  const busy = bull.queue('busy');
  const gate = new Promise<void>((r) => (releaseBusy = r));
  bull.worker('busy', async () => gate, { name: 'w1' });
  bull.worker('busy', async () => gate);
  await busy.add('long', {});
  await waitFor('busy job active', async () => (await busy.getJobCounts('active')).active === 1);
  busyActiveAt = Date.now();

  // orphan: the worker process is SIGKILLed mid-job; with no live worker the expired lock is never reclaimed.
  const orphan = bull.queue('orphan');
  await orphan.add('o', {});
  const stuck = await bull.stuckWorker('orphan', 1000);
  stuck.proc.kill('SIGKILL');
  await waitFor('orphan lock expiry', async () => (await redis.client().pttl(`bull:orphan:${stuck.jobId}:lock`)) === -2, 30_000);

  // paused: jobs added while paused stay in wait.
  const paused = bull.queue('paused');
  await paused.pause();
  await paused.add('a', {});
  await paused.add('b', {});

  // limited: global rate limit of 1 job per minute; the worker takes one, two wait behind the limiter.
  const limited = bull.queue('limited');
  await limited.setGlobalRateLimit(1, 60_000);
  for (let i = 0; i < 3; i += 1) await limited.add('l', { i });
  const lw = bull.worker('limited', async () => 'ok');
  await waitFor('one limited job done', async () => (await limited.getJobCounts('completed')).completed === 1);
  await lw.close();

  // worker-limited: the limit lives in the worker (1 job a minute), not in Redis; after one job the live
  // limiter window holds the other two back with nothing running (one window: not yet evidence of a binding limiter).
  const wl = bull.queue('worker-limited');
  for (let i = 0; i < 3; i += 1) await wl.add('l', { i });
  const wlw = bull.worker('worker-limited', async () => 'ok', { limiter: { max: 1, duration: 60_000 } });
  await waitFor('one worker-limited job done', async () => (await wl.getJobCounts('completed')).completed === 1);
  await wlw.close();

  // manual: queue.rateLimit() holds every job back for a minute, whatever the workers' limits.
  const manual = bull.queue('manual');
  await manual.add('m', {});
  await manual.rateLimit(60_000);

  // flow: a parent waiting for two children nobody processes.
  await bull
    .flow()
    .add({ name: 'parent', queueName: 'parents', data: {}, children: [1, 2].map((i) => ({ name: 'child', queueName: 'children', data: { i } })) });

  // dead-letter queue of "finished" (a dead-letter queue is one whose source queue exists): two parked jobs, the older one enqueued 300 s ago.
  const dlq = bull.queue('finished-dlq');
  await dlq.add('dead', {}, { timestamp: now - 300_000 });
  await dlq.add('dead', {});

  sidecar = await testSidecar(redis.url);
  before = Date.now();
  await sidecar.refresh();
  after = Date.now();
  series = await sidecar.scrape();
}, 60_000);

afterAll(async () => {
  releaseBusy?.();
  await sidecar?.close();
  await bull?.close();
  await redis?.stop();
});

describe('queue state gauges', () => {
  it('finds every queue', () => {
    const names = sidecar.discovery
      .queues()
      .map((q) => q.name)
      .sort();
    expect(names).toEqual(
      [
        'busy',
        'children',
        'delayed-eligible',
        'finished-dlq',
        'finished',
        'limited',
        'manual',
        'orphan',
        'parents',
        'paused',
        'prio-only',
        'waits',
        'worker-limited',
      ].sort(),
    );
    expect(series.get(seriesKey('bullmq_exporter_queues', { prefix: 'bull' }))).toBe(13);
    expect(series.get('bullmq_exporter_up')).toBe(1);
    expect(series.get('bullmq_exporter_redis_up')).toBe(1);
  });

  it('counts jobs per state exactly as enqueued, and as BullMQ itself counts them', async () => {
    const expected: Record<string, Partial<Record<string, number>>> = {
      waits: { waiting: 4, prioritized: 2, delayed: 5 },
      'prio-only': { prioritized: 2 },
      'delayed-eligible': { waiting: 1 },
      finished: { completed: 3, failed: 2 },
      busy: { active: 1 },
      orphan: { active: 1 },
      paused: { waiting: 2 },
      limited: { waiting: 2, completed: 1 },
      'worker-limited': { waiting: 2, completed: 1 },
      manual: { waiting: 1 },
      parents: { waiting_children: 1 },
      children: { waiting: 2 },
      'finished-dlq': { waiting: 2 },
    };
    const states = ['waiting', 'prioritized', 'delayed', 'active', 'waiting_children', 'completed', 'failed'];
    for (const [queue, counts] of Object.entries(expected)) {
      const bullCounts = await bull.queue(queue).getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'waiting-children', 'completed', 'failed');
      for (const state of states) {
        const got = g('bullmq_queue_jobs', queue, { state });
        expect(got, `${queue} ${state}`).toBe(counts[state] ?? 0);
        expect(got, `${queue} ${state} vs getJobCounts`).toBe(bullCounts[state === 'waiting_children' ? 'waiting-children' : state]);
      }
    }
  });

  it('reports paused, overdue delayed and rate-limited queues', () => {
    expect(g('bullmq_queue_paused', 'paused')).toBe(1);
    // Only while paused (the series budget, docs/metrics.md): no series for a queue that is not.
    expect(g('bullmq_queue_paused', 'waits')).toBeUndefined();
    expect(g('bullmq_queue_delayed_overdue_jobs', 'waits')).toBe(2);
    expect(g('bullmq_queue_rate_limited', 'limited')).toBe(1);
    // A Worker limiter is flagged only after two windows were seen filled to its max (test/exactness.test.ts,
    // item 3): one look at its first window is not enough, whatever runs.
    expect(g('bullmq_queue_rate_limited', 'worker-limited')).toBeUndefined();
    expect(g('bullmq_queue_rate_limited', 'manual')).toBe(1);
    // A backlog without a live limiter window is not rate limited (no worker here at all).
    expect(g('bullmq_queue_rate_limited', 'waits')).toBeUndefined();
    expect(g('bullmq_queue_rate_limited', 'children')).toBeUndefined();
    expect(g('bullmq_queue_rate_limited', 'busy')).toBeUndefined();
  });

  it('measures the oldest waiting age from eligibility (wait head, else prioritized head; delay excluded)', () => {
    const within = (got: number | undefined, eligibleAgoMs: number) => {
      // The job became eligible at t0 - eligibleAgoMs; the collection ran between `before` and `after`.
      expect(got).toBeDefined();
      expect(got!).toBeGreaterThanOrEqual((before - t0 + eligibleAgoMs) / 1000 - 0.01);
      expect(got!).toBeLessThanOrEqual((after - t0 + eligibleAgoMs) / 1000 + 0.01);
    };
    within(g('bullmq_queue_oldest_waiting_age_seconds', 'waits'), 120_000);
    within(g('bullmq_queue_oldest_waiting_age_seconds', 'prio-only'), 30_000);
    within(g('bullmq_queue_oldest_waiting_age_seconds', 'delayed-eligible'), 40_000 - 50);
    expect(g('bullmq_queue_oldest_waiting_age_seconds', 'finished')).toBe(0);
  });

  it('measures the oldest active job and finds the orphan whose worker was killed', () => {
    const age = g('bullmq_queue_oldest_active_age_seconds', 'busy')!;
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThanOrEqual((after - busyActiveAt) / 1000 + 0.1);
    expect(g('bullmq_queue_orphaned_active_jobs', 'orphan')).toBe(1);
    expect(g('bullmq_queue_orphaned_active_jobs', 'busy')).toBeUndefined();
    expect(g('bullmq_queue_oldest_active_age_seconds', 'waits')).toBe(0);
  });

  it('counts worker connections per queue', () => {
    expect(g('bullmq_queue_workers', 'busy')).toBe(2);
    expect(g('bullmq_queue_workers', 'orphan')).toBe(0);
    expect(g('bullmq_queue_workers', 'finished')).toBe(0);
  });

  it('exports dead-letter depth and age under the source queue name', () => {
    expect(g('bullmq_dlq_jobs', 'finished')).toBe(2);
    const age = g('bullmq_dlq_oldest_age_seconds', 'finished')!;
    expect(age).toBeGreaterThanOrEqual(300 - 0.05);
    expect(age).toBeLessThan(300 + (after - before) / 1000 + 30);
    expect(g('bullmq_dlq_jobs', 'waits')).toBeUndefined();
  });

  it('does not count the backoff of a retried job as waiting time', async () => {
    const q = bull.queue('retried');
    const job = await q.add('r', {}, { attempts: 2, backoff: { type: 'fixed', delay: 1500 } });
    const w = bull.worker('retried', async () => {
      throw new Error('first attempt fails');
    });
    await waitFor('backoff', async () => (await q.getJobState(job.id!)) === 'delayed');
    await w.close();
    const failed = (await q.getJob(job.id!))!;
    await new Promise((r) => setTimeout(r, 1600));
    await q.promoteJobs(); // no worker runs, so nothing promotes lazily
    expect(await q.getJobState(job.id!)).toBe('waiting');
    const due = failed.processedOn! + 1500;
    const t1 = Date.now();
    await sidecar.refresh();
    const t2 = Date.now();
    const age = (await sidecar.scrape()).get(seriesKey('bullmq_queue_oldest_waiting_age_seconds', { prefix: 'bull', queue: 'retried' }))!;
    // Counted from the end of the backoff (the failed attempt's own few ms aside), not from the attempt's start.
    expect(age).toBeGreaterThanOrEqual((t1 - due) / 1000 - 0.05);
    expect(age).toBeLessThanOrEqual((t2 - due) / 1000 + 0.2);
  });

  it('leaves bullmq_queue_workers out, with one warning, where CLIENT LIST is refused', async () => {
    const admin = redis.client();
    await admin.call('ACL', 'SETUSER', 'noclient', 'on', '>pw-noclient', '~*', '&*', '+@all', '-client');
    const lines: string[] = [];
    const { Writable } = await import('node:stream');
    const { createLogger } = await import('../src/log/logger.js');
    const { createSidecar } = await import('../src/sidecar/create-sidecar.js');
    const log = createLogger({ level: 'warn', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
    const limited = await createSidecar({ ...sidecar.config, redisUrl: `redis://noclient:pw-noclient@127.0.0.1:${redis.port}` }, log);
    await limited.refresh();
    await limited.refresh();
    const text = (await limited.app.inject({ url: '/metrics' })).body;
    expect(text).not.toMatch(/^bullmq_queue_workers\{/m);
    expect(text).toContain('bullmq_queue_jobs{prefix="bull",queue="busy",state="active"} 1');
    expect(text).toContain('bullmq_exporter_up 1');
    expect(lines.filter((l) => l.includes('CLIENT LIST is not allowed'))).toHaveLength(1);
    await limited.close();
  });

  it('counts orphans in active lists longer than the inline check', async () => {
    // 7 fake active ids, 3 with live locks; check 2 inline and the rest in pages of 2.
    const c = redis.client();
    await bull.queue('many-active').add('x', {});
    await c.lpush('bull:many-active:active', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7');
    for (const id of ['a2', 'a5', 'a7']) await c.set(`bull:many-active:${id}:lock`, 'tok', 'PX', 60_000);
    const { Collector } = await import('../src/collector/collector.js');
    const { RedisQueueStateSource } = await import('../src/redis/queue-state-source.js');
    const log = (await import('../src/log/logger.js')).createLogger({ level: 'silent' });
    const collector = new Collector({
      source: new RedisQueueStateSource({ redis: sidecar.redis, log, orphanPageSize: 2 }),
      discovery: sidecar.discovery,
      log,
      activeCheckLimit: 2,
    });
    await sidecar.discovery.runPass();
    const snap = await collector.collect();
    const q = snap.queues.find((s) => s.ref.name === 'many-active')!;
    expect(q.jobs.active).toBe(7);
    expect(q.orphanedActive).toBe(4);
  });
});
