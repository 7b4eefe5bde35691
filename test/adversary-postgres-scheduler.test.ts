// Adversarial probe (issue 18): a job scheduler (repeatable job) on PostgreSQL. Ground truth: the scheduler's jobs in
// the `job` table (ids `repeat:<scheduler>:<millis>`) and their completions.
import { describe, expect, it } from 'vitest';
import { usePostgresSuite, type TestPostgresSidecar } from './helpers/postgres-suite.js';
import { seriesKey, type Series } from './helpers/prom-text.js';

const POLL = { timeout: 90_000, interval: 250 };
const Q = 'sched';

describe('adversary: job schedulers on PostgreSQL', () => {
  const pg = usePostgresSuite();

  /** A plain job and a scheduler every 300 ms, run until 4 jobs completed; the ground truth of the job table. */
  const workload = async (name: string) => {
    const q = pg.bull.queue(name);
    await q.add('plain', {});
    await q.upsertJobScheduler('every-300', { every: 300 }, { name: 'tick', data: {} });
    const w = pg.bull.worker(name, async () => 1);
    await expect.poll(async () => (await q.getJobCounts('completed')).completed, POLL).toBeGreaterThanOrEqual(4);
    await q.removeJobScheduler('every-300');
    await w.close();
    const pool = pg.server.pool(1);
    const count = async (sql: string) => Number((await pool.query<{ n: string }>(sql, [name])).rows[0]!.n);
    return {
      completed: await count("SELECT count(*)::text AS n FROM bullmq.job WHERE queue = $1 AND state = 'completed'"),
      // Every job the queue ever held is still there (no retention): the plain one and the scheduler's.
      jobs: await count('SELECT count(*)::text AS n FROM bullmq.job WHERE queue = $1'),
      addedEvents: await count("SELECT count(*)::text AS n FROM bullmq.event WHERE queue = $1 AND event = 'added'"),
    };
  };

  let sidecar: TestPostgresSidecar | undefined;
  const started = async () => {
    if (sidecar) return sidecar;
    const s = await pg.sidecar({ discoveryInterval: 0.5 });
    await s.refresh();
    await s.start();
    sidecar = s;
    return s;
  };

  const exported = async (name: string) => {
    const s = await started();
    await s.refresh();
    const m: Series = await s.scrape();
    const key = (metric: string) => seriesKey(metric, { prefix: 'bullmq', queue: name });
    return {
      added: m.get(key('bullmq_jobs_added_total')),
      completed: m.get(key('bullmq_jobs_completed_total')),
      processed: m.get(key('bullmq_job_processing_seconds_count')),
      e2e: m.get(key('bullmq_job_e2e_seconds_count')),
    };
  };

  it('counts every completion of a scheduler’s jobs, each with its processing time, and the adds the event table holds', async () => {
    await started();
    const truth = await workload(Q);
    await expect.poll(async () => (await exported(Q)).completed, POLL).toBe(truth.completed);
    const got = await exported(Q);
    expect(got.processed).toBe(truth.completed);
    expect(got.added).toBe(truth.addedEvents);
  });

  // OPEN DEFECT (upstream BullMQ 6.7 PostgreSQL backend, visible in queuelens): add_job_scheduler and
  // update_job_scheduler insert the scheduler's jobs without publishing `added` (nor `delayed`), unlike Redis's
  // addJobScheduler/storeJob. So bullmq_jobs_added_total misses every scheduled job, and their end-to-end (and wait)
  // latencies are never observed: with a plain job and 3 scheduled ones, all 4 completed, queuelens exports
  // added_total 1 and e2e count 1 against 4 jobs created and 4 completed (and no unmatched count says so).
  it.skip('counts a scheduler’s jobs as added and observes their end-to-end latency', async () => {
    const name = `${Q}-e2e`;
    const truth = await workload(name);
    await expect.poll(async () => (await exported(name)).completed, POLL).toBe(truth.completed);
    const got = await exported(name);
    expect(got.added).toBe(truth.jobs);
    expect(got.e2e).toBe(truth.completed);
  });
});
