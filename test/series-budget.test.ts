// The series budget of the default (classic) exposition, measured on a real sidecar's /metrics: how many series
// one queue costs once it has traffic, what a dead-letter queue costs, and that the exporter says what it is.
// docs/metrics.md (cardinality) states the same numbers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seriesPerQueue } from '../src/metrics/metrics-doc.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { seriesKey, type Series } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

let redis: TestRedis;
let bull: BullFixtures;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await bull?.close();
  await redis?.stop();
});

/** Series of one queue: every sample whose labels name it (queue="<name>" and its prefix). */
function seriesOfQueue(m: Series, queue: string): string[] {
  return [...m.keys()].filter((k) => k.includes(`queue="${queue}"`));
}

describe('series budget', () => {
  it('a queue whose jobs complete costs at most 60 series; its dead-letter queue carries no histograms', async () => {
    const s = await testSidecar(redis.url, { ownPrefix: 'ql-budget', queues: undefined, prefixes: 'budget' });
    closers.push(() => s.close());
    const work = bull.queue('work', { prefix: 'budget' });
    const dlq = bull.queue('work-dlq', { prefix: 'budget' });
    await work.add('j', {});
    await dlq.add('parked', {});
    await s.start();
    await waitFor('both queues registered', async () => {
      await s.refresh();
      const m = await s.scrape();
      return m.has(seriesKey('bullmq_jobs_added_total', { prefix: 'budget', queue: 'work' }));
    });
    // The job that made the queue discoverable was added before the reader followed it: out of the count.
    await work.drain();
    bull.worker('work', async () => 'ok', { prefix: 'budget', concurrency: 5 });
    await work.addBulk(Array.from({ length: 20 }, () => ({ name: 'j', data: {} })));
    const m = await waitFor('the jobs counted', async () => {
      await s.refresh();
      const x = await s.scrape();
      return x.get(seriesKey('bullmq_jobs_completed_total', { prefix: 'budget', queue: 'work' })) === 20 && x;
    });
    const work_ = seriesOfQueue(m, 'work');
    // Every latency series this queue's traffic produced is there, with exact counts.
    expect(m.get(seriesKey('bullmq_job_processing_seconds_count', { prefix: 'budget', queue: 'work', outcome: 'completed' }))).toBe(20);
    expect(m.get(seriesKey('bullmq_job_e2e_seconds_count', { prefix: 'budget', queue: 'work', outcome: 'completed' }))).toBe(20);
    expect(m.get(seriesKey('bullmq_job_wait_seconds_count', { prefix: 'budget', queue: 'work', attempt: 'first' }))).toBe(20);
    // Exactly what docs/metrics.md (cardinality) says, and within the budget.
    const n = seriesPerQueue();
    expect(work_.length).toBe(n.completing + n.dlqAddsToSource);
    expect(work_.length).toBeLessThanOrEqual(60);
    // The dead-letter queue: depth, age, counters, reader health; no latency histogram.
    const dlqSeries = seriesOfQueue(m, 'work-dlq');
    expect(m.get(seriesKey('bullmq_dlq_jobs', { prefix: 'budget', queue: 'work' }))).toBe(1);
    expect(dlqSeries.filter((k) => k.startsWith('bullmq_job_'))).toEqual([]);
    expect(dlqSeries.length).toBe(n.deadLetterQueue);

    const info = [...m.keys()].filter((k) => k.startsWith('bullmq_exporter_build_info'));
    expect(info).toHaveLength(1);
    expect(info[0]).toContain(`nodejs_version="${process.version}"`);
    expect(m.get(info[0] as string)).toBe(1);
  });
});
