// Adversarial probe (issue 18): debounce (dedup with replace and extend), keepLastIfActive, and a flow whose parent
// waits in another queue, on PostgreSQL: the gauges against the job table, the counters against the adds the test
// made, the oldest waiting age of a released parent from its last child's finish.
import type { Job } from 'bullmq';
import { beforeAll, describe, expect, it } from 'vitest';
import { usePostgresSuite, type TestPostgresSidecar } from './helpers/postgres-suite.js';
import { seriesKey, type Series } from './helpers/prom-text.js';

const POLL = { timeout: 90_000, interval: 250 };

describe('adversary: debounce and flows on PostgreSQL', () => {
  const pg = usePostgresSuite();
  let sidecar: TestPostgresSidecar | undefined;

  beforeAll(async () => {
    await pg.bull.queue('debounced').add('seed', {}, { delay: 3_600_000 });
    sidecar = await pg.sidecar({ discoveryInterval: 0.5 });
    await sidecar.refresh();
    await sidecar.start();
  });

  const read = async (): Promise<Series> => {
    await sidecar!.refresh();
    return sidecar!.scrape();
  };
  const at = (m: Series, metric: string, queue: string, extra: Record<string, string> = {}) => m.get(seriesKey(metric, { prefix: 'bullmq', queue, ...extra }));

  it('counts a debounced add that replaced the pending job as deduplicated, and one job delayed', async () => {
    const q = pg.bull.queue('debounced');
    const opts = { delay: 3_600_000, deduplication: { id: 'd', ttl: 3_600_000, extend: true, replace: true } };
    await q.add('v1', { v: 1 }, opts);
    await q.add('v2', { v: 2 }, opts);
    await q.add('v3', { v: 3 }, opts);
    const pool = pg.server.pool(1);
    const rows = (await pool.query<{ name: string }>("SELECT name FROM bullmq.job WHERE queue = 'debounced' AND dedup_id = 'd'")).rows;
    expect(rows.map((r) => r.name)).toEqual(['v3']);
    const ev = new Map(
      (await pool.query<{ event: string; n: string }>("SELECT event, count(*)::text AS n FROM bullmq.event WHERE queue = 'debounced' GROUP BY event")).rows.map(
        (r) => [r.event, Number(r.n)],
      ),
    );
    await expect
      .poll(async () => {
        const m = await read();
        return {
          delayed: at(m, 'bullmq_queue_jobs', 'debounced', { state: 'delayed' }),
          added: at(m, 'bullmq_jobs_added_total', 'debounced'),
          deduplicated: at(m, 'bullmq_jobs_deduplicated_total', 'debounced'),
        };
      }, POLL)
      // seed + v1 + the two replacements: BullMQ stores each replacing add as a new job.
      .toEqual({ delayed: 2, added: ev.get('added'), deduplicated: 2 });
  });

  it('ages a flow parent released in another queue from its last child’s finish, not from its creation', async () => {
    await pg.bull.flow().add({
      name: 'parent',
      queueName: 'parents',
      children: [
        { name: 'c', queueName: 'children', data: {} },
        { name: 'c', queueName: 'children', data: {} },
      ],
    });
    const parents = pg.bull.queue('parents');
    const created = (await parents.getJobs(['waiting-children']))[0]!;
    await new Promise((r) => setTimeout(r, 1_500));
    pg.bull.worker('children', async (j: Job) => j.id);
    await expect.poll(async () => (await parents.getJobCounts('waiting')).waiting, POLL).toBe(1);
    const children = await pg.bull.queue('children').getJobs(['completed']);
    const lastFinish = Math.max(...children.map((c) => c.finishedOn!));
    expect(lastFinish - created.timestamp).toBeGreaterThanOrEqual(1_500);
    const before = Date.now();
    const m = await read();
    const after = Date.now();
    const age = at(m, 'bullmq_queue_oldest_waiting_age_seconds', 'parents')! * 1000;
    expect(age).toBeGreaterThanOrEqual(before - lastFinish - 5);
    expect(age).toBeLessThanOrEqual(after - lastFinish + 5);
    expect(at(m, 'bullmq_queue_jobs', 'parents', { state: 'waiting' })).toBe(1);
    expect(at(m, 'bullmq_queue_jobs', 'children', { state: 'completed' })).toBe(2);
  });
});
