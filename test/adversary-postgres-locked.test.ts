// Adversarial probe (issue 18): an ACCESS EXCLUSIVE lock on BullMQ's `event` table held longer than the sidecar's
// statement timeout (a VACUUM FULL, a careless migration) while producers and workers wait behind it. The collection
// and the event leader's polls time out instead of hanging; once the lock goes, every counter equals the event table:
// nothing counted twice from a poll whose commit failed, nothing skipped.
import { describe, expect, it } from 'vitest';
import { freshMetrics, usePostgresSuite } from './helpers/postgres-suite.js';
import { seriesKey } from './helpers/prom-text.js';

const POLL = { timeout: 120_000, interval: 300 };
const Q = 'locked';

describe('adversary: BullMQ’s event table locked past the statement timeout', () => {
  const pg = usePostgresSuite();

  it('times out while the lock is held and counts exactly once it is gone', async () => {
    const q = pg.bull.queue(Q);
    pg.bull.worker(Q, async () => 1, { concurrency: 2 });
    for (let i = 0; i < 10; i++) await q.add('before', {});
    const s = await pg.sidecar({ pgStatementTimeout: 0.5 });
    await s.refresh();
    await s.start();
    const key = (name: string) => seriesKey(name, { prefix: 'bullmq', queue: Q });
    const counters = async () => {
      const m = await freshMetrics(s);
      return {
        added: m.get(key('bullmq_jobs_added_total')),
        completed: m.get(key('bullmq_jobs_completed_total')),
        read: m.get(key('bullmq_exporter_events_read_total')),
        lost: m.get(key('bullmq_exporter_events_lost_total')),
      };
    };
    await expect.poll(async () => (await counters()).completed, POLL).toBe(10);

    const locker = await pg.server.pool(1).connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE bullmq.event IN ACCESS EXCLUSIVE MODE');
    // Producers queue up behind the lock (each add inserts an event row).
    const adds = Array.from({ length: 10 }, () => q.add('during', {}));
    // The collection reads `event` too: it fails by its timeout (up 0), it does not hang.
    await expect.poll(async () => (await freshMetrics(s)).get('bullmq_exporter_up'), POLL).toBe(0);
    const errorsBefore = (await freshMetrics(s)).get('bullmq_exporter_collect_errors_total') ?? 0;
    expect(errorsBefore).toBeGreaterThan(0);
    await locker.query('COMMIT');
    locker.release();
    await Promise.all(adds);
    await expect.poll(async () => (await q.getJobCounts('completed')).completed, POLL).toBe(20);

    const pool = pg.server.pool(1);
    const truth = async () => {
      const rows = (await pool.query<{ event: string; n: string }>('SELECT event, count(*)::text AS n FROM bullmq.event WHERE queue = $1 GROUP BY event', [Q]))
        .rows;
      const n = (k: string) => Number(rows.find((r) => r.event === k)?.n ?? 0);
      return { added: n('added'), completed: n('completed'), read: rows.reduce((a, r) => a + Number(r.n), 0), lost: 0 };
    };
    const t = await truth();
    expect([t.added, t.completed]).toEqual([20, 20]);
    await expect.poll(counters, POLL).toEqual(t);
    expect((await freshMetrics(s)).get('bullmq_exporter_up')).toBe(1);
  });
});
