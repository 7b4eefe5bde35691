// Adversarial probe (issue 18): custom job ids (with `:`, spaces, unicode, 400 bytes long) and very large payloads
// and return values (4 MB each) through the event leader on PostgreSQL. Ground truth: the jobs the test ran; every
// completion counted once, with a processing and an end-to-end observation each.
import type { Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { freshMetrics, usePostgresSuite } from './helpers/postgres-suite.js';
import { seriesKey } from './helpers/prom-text.js';

const POLL = { timeout: 120_000, interval: 300 };
const Q = 'heavy';

describe('adversary: custom ids and large payloads on PostgreSQL', () => {
  const pg = usePostgresSuite();

  it('counts each job once with its latencies, whatever its id and size', async () => {
    const q = pg.bull.queue(Q);
    const big = 'x'.repeat(4 * 1024 * 1024);
    const ids = ['a:b:c', 'with space', 'ünï-队列-🚀', 'id'.repeat(200), 'x01', 'repeat:fake:123'];
    const s = await pg.sidecar();
    await s.refresh();
    await s.start();
    pg.bull.worker(Q, async (job: Job) => (job.name === 'big' ? { big } : job.id), { concurrency: 2 });
    for (const id of ids) await q.add('small', { id }, { jobId: id });
    for (let i = 0; i < 3; i++) await q.add('big', { big });
    // A duplicate custom id is not a second job.
    await q.add('small', {}, { jobId: 'a:b:c' });
    await expect.poll(async () => (await q.getJobCounts('completed')).completed, POLL).toBe(ids.length + 3);
    const key = (name: string) => seriesKey(name, { prefix: 'bullmq', queue: Q });
    await expect
      .poll(async () => {
        const m = await freshMetrics(s);
        return {
          added: m.get(key('bullmq_jobs_added_total')),
          completed: m.get(key('bullmq_jobs_completed_total')),
          processing: m.get(key('bullmq_job_processing_seconds_count')),
          e2e: m.get(key('bullmq_job_e2e_seconds_count')),
          unmatched: m.get(key('bullmq_exporter_events_unmatched_total')) ?? 0,
          lost: m.get(key('bullmq_exporter_events_lost_total')),
        };
      }, POLL)
      .toEqual({ added: 9, completed: 9, processing: 9, e2e: 9, unmatched: 0, lost: 0 });
    const m = await freshMetrics(s);
    expect(m.get('bullmq_exporter_up')).toBe(1);
    expect(m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bullmq', queue: Q, state: 'completed' }))).toBe(9);
  });
});
