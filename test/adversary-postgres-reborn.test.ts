// Adversarial probe (issue 18): a queue obliterated (with a job still running) and re-created while the event leader
// follows it. BullMQ deletes the queue's events and restarts its job ids at 1, so the new jobs reuse the old ids.
// Ground truth: what the test ran in both lives; the counters only grow, nothing is lost or counted twice.
import type { Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { usePostgresSuite } from './helpers/postgres-suite.js';
import { seriesKey } from './helpers/prom-text.js';

const POLL = { timeout: 90_000, interval: 250 };
const Q = 'reborn';

describe('adversary: obliterate and re-create under a running event leader', () => {
  const pg = usePostgresSuite();

  it('keeps counting across the two lives of the queue, with the reused job ids', async () => {
    const first = pg.bull.queue(Q);
    await first.add('seed', {});
    const s = await pg.sidecar({ discoveryInterval: 1 });
    await s.refresh();
    await s.start();
    const key = (name: string) => seriesKey(name, { prefix: 'bullmq', queue: Q });
    const read = async () => {
      await s.refresh();
      const m = await s.scrape();
      return {
        added: m.get(key('bullmq_jobs_added_total')),
        completed: m.get(key('bullmq_jobs_completed_total')),
        lost: m.get(key('bullmq_exporter_events_lost_total')),
      };
    };
    const w = pg.bull.worker(Q, async (job: Job) => (job.name === 'hang' ? new Promise(() => undefined) : 1));
    await first.add('ok', {});
    await first.add('hang', {});
    await expect.poll(async () => (await first.getJobCounts('completed', 'active')) as Record<string, number>, POLL).toEqual({ completed: 2, active: 1 });
    await expect.poll(async () => (await read()).completed, POLL).toBe(2);
    await w.close(true);
    await first.obliterate({ force: true });

    // Second life: ids restart at 1.
    const second = pg.bull.queue(Q);
    const again = [await second.add('ok', {}), await second.add('ok', {})];
    expect(again.map((j) => j.id)).toEqual(['1', '2']);
    pg.bull.worker(Q, async () => 1);
    await expect.poll(async () => (await second.getJobCounts('completed')).completed, POLL).toBe(2);
    // seed, ok, hang, then ok, ok: five adds; seed, ok, ok, ok completed; the obliterated running job never ends.
    await expect.poll(read, POLL).toEqual({ added: 5, completed: 4, lost: 0 });
  });
});
