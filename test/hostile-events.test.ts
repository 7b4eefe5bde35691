// Hostile content on the events streams, read by a real sidecar process: 5 MB return values must not
// balloon its memory (reads are sized in bytes, not only entries), and garbage, events of unknown jobs,
// out-of-order and duplicate entries written with XADD are counted (as unmatched where they match nothing),
// never crash the reader, and do not stop it counting what comes after.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueKey } from '../src/redis/keys.js';
import { type QueueRef } from '../src/domain/queue-ref.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { caughtUp, metric, startSidecarProcess, type SidecarProcess } from './helpers/sidecar-process.js';

const MB = 1024 * 1024;
let redis: TestRedis;
let raw: Redis;
let bull: BullFixtures;
const sidecars: SidecarProcess[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  raw = redis.client();
  bull = new BullFixtures(redis);
});
afterAll(async () => {
  await Promise.all(sidecars.map((s) => s.stop()));
  await bull?.close();
  await redis?.stop();
});

async function sidecar(queues: string): Promise<SidecarProcess> {
  const s = await startSidecarProcess({ redisUrl: redis.url, ownPrefix: `ql-${queues}`, queues });
  sidecars.push(s);
  return s;
}

async function finished(q: QueueRef, n: number): Promise<void> {
  await waitFor(
    `${n} jobs of ${q.name} finished`,
    async () =>
      (await raw.xlen(queueKey(q, 'events'))) > 0 &&
      (await raw.get(queueKey(q, 'id'))) === String(n) &&
      (await raw.llen(queueKey(q, 'wait'))) + (await raw.llen(queueKey(q, 'active'))) === 0,
    30_000,
  );
}

describe('hostile events', () => {
  it('catching up over 200 MB of 5 MB return values, the sidecar peaks less than 150 MB above an idle one', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'huge' };
    const HUGE = 40;
    const SMALL = 400;
    const big = 'x'.repeat(5 * MB);
    // Follow the stream from its first entry, then stop: the next sidecar catches up on all of it at once.
    const first = await sidecar(q.name);
    await waitFor('the reader installed', async () => (await first.metrics()).has('bullmq_exporter_events_read_total{prefix="bull",queue="huge"}'));
    await first.stop();
    const queue = bull.queue(q.name, { defaultJobOptions: { removeOnComplete: true } });
    // The stream alone holds the return values: the job hashes are removed on completion.
    bull.worker(q.name, async (job) => ((job.data as { huge: boolean }).huge ? big : 'ok'), { concurrency: 2 });
    // Huge job data too: it never reaches the stream, and the reader never reads job hashes.
    await queue.addBulk(Array.from({ length: 3 }, () => ({ name: 'data', data: { huge: false, blob: big } })));
    // Huge results spread through the stream, one in every 11 jobs.
    const plan = Array.from({ length: SMALL - 3 + HUGE }, (_, i) => i % 11 === 5 && Math.floor(i / 11) < HUGE);
    expect(plan.filter(Boolean)).toHaveLength(HUGE);
    await queue.addBulk(plan.map((huge) => ({ name: huge ? 'big' : 'small', data: { huge } })));
    await finished(q, SMALL + HUGE);
    expect(Number(await raw.memory('USAGE', queueKey(q, 'events'), 'SAMPLES', 0))).toBeGreaterThan(HUGE * 5 * MB);

    // Same binary, same flags, a queue with nothing to read: what the process needs anyway.
    const idle = await sidecar('idle');
    await new Promise((r) => setTimeout(r, 2000));

    const reader = await sidecar(q.name);
    const m = await caughtUp(reader, raw, q, 30_000);
    expect(metric(m, 'bullmq_jobs_completed_total', q)).toBe(SMALL + HUGE);
    expect(metric(m, 'bullmq_jobs_added_total', q)).toBe(SMALL + HUGE);
    expect(metric(m, 'bullmq_exporter_events_lost_total', q)).toBe(0);
    // Reading the backlog whole would need more than the backlog itself (reply buffers plus strings: the
    // reader before byte-sized reads peaked 220 MB above idle for half this backlog).
    const grew = reader.peakRss() - idle.peakRss();
    expect(grew, `peak RSS ${Math.round(reader.peakRss() / MB)} MB vs idle ${Math.round(idle.peakRss() / MB)} MB`).toBeLessThan(150 * MB);
    await Promise.all([idle.stop(), reader.stop()]);
  }, 50_000);

  it('garbage, unknown jobs, out-of-order and duplicate entries are counted, and counting goes on after them', async () => {
    const q: QueueRef = { prefix: 'bull', name: 'garbage' };
    const stream = queueKey(q, 'events');
    const s = await sidecar(q.name);
    // Follow the stream from its first entry: a reader that installs after the first events treats them as history
    // and starts at the end (seen under a loaded CI box), and caughtUp() would wait for entries it never reads.
    await waitFor('the reader installed', async () => (await s.metrics()).has('bullmq_exporter_events_read_total{prefix="bull",queue="garbage"}'));
    const queue = bull.queue(q.name);
    bull.worker(q.name, async () => 'done', { concurrency: 5 });
    await queue.addBulk(Array.from({ length: 20 }, () => ({ name: 'j', data: {} })));
    await finished(q, 20);
    let m = await caughtUp(s, raw, q);
    expect(metric(m, 'bullmq_jobs_completed_total', q)).toBe(20);

    const xadd = (...fields: string[]) => raw.xadd(stream, '*', ...fields);
    // Not events at all: no `event`, no `jobId`, binary junk, a half JSON document, 200 fields.
    await xadd('foo', '\u0000\uffff{not json');
    await xadd('event', '{"a":', 'jobId', '');
    await xadd('event', 'completed');
    await xadd('jobId', 'no-event');
    await xadd('event', 'no-such-event', 'jobId', '1');
    await xadd(...Array.from({ length: 200 }, (_, i) => `f${i}`));
    // Terminal events of jobs that never existed: counted, and unmatched.
    for (const id of ['ghost-1', 'ghost-2', 'ghost-3']) await xadd('event', 'completed', 'jobId', id, 'returnvalue', 'not json {');
    await xadd('event', 'failed', 'jobId', 'ghost-4', 'failedReason', '\u0000');
    await xadd('event', 'delayed', 'jobId', 'ghost-5', 'delay', 'soon');
    // Duplicates of real, already-finished jobs' completions.
    await xadd('event', 'completed', 'jobId', '1', 'returnvalue', '"done"');
    await xadd('event', 'completed', 'jobId', '2', 'returnvalue', '"done"');
    // One job's lifecycle backwards: completed, then active, then added (it then stays in flight).
    await xadd('event', 'completed', 'jobId', 'backwards', 'returnvalue', '1');
    await xadd('event', 'active', 'jobId', 'backwards', 'prev', 'waiting');
    await xadd('event', 'added', 'jobId', 'backwards', 'name', 'x');
    // An explicit id below the last one is refused by Redis itself: the stream can never go back in time.
    await expect(raw.xadd(stream, '1-1', 'event', 'added', 'jobId', 'past')).rejects.toThrow(/equal or smaller/);

    m = await caughtUp(s, raw, q).catch((err: Error) => {
      throw new Error(`${err.message}\n${s.cli.output()}`);
    });
    expect(s.alive()).toBe(true);
    expect(metric(m, 'bullmq_jobs_completed_total', q)).toBe(20 + 3 + 2 + 1);
    expect(metric(m, 'bullmq_jobs_failed_total', q)).toBe(1);
    expect(metric(m, 'bullmq_jobs_added_total', q)).toBe(21);
    // ghost-1..4, the two duplicates, the backwards completion, and the delay of a job never seen.
    expect(metric(m, 'bullmq_exporter_events_unmatched_total', q)).toBe(8);
    expect(metric(m, 'bullmq_exporter_events_lost_total', q)).toBe(0);

    // Real traffic after the garbage is counted as before.
    await queue.addBulk(Array.from({ length: 10 }, () => ({ name: 'j', data: {} })));
    await finished(q, 30);
    m = await caughtUp(s, raw, q);
    expect(metric(m, 'bullmq_jobs_completed_total', q)).toBe(36);
    expect(metric(m, 'bullmq_jobs_added_total', q)).toBe(31);
    // Every observed attempt (outcomes are summed on /metrics: the series budget); all 30 completed.
    expect(metric(m, 'bullmq_job_processing_seconds_count', q)).toBe(30);
    await s.stop();
  }, 40_000);
});
