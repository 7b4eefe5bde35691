// The PostgreSQL collection counts completed/failed (O(retained) to count) only when a queue's events say its finished
// set may have changed (docs/postgres.md §2.2). Every number is checked against BullMQ's own getJobCounts() of the same
// database, through completions, retention deletes, clean, reprocess, and a finishing transaction that commits after
// later event ids did.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Queue } from 'bullmq';
import { PostgresSnapshotCollector } from '../src/postgres/snapshot.js';
import { PostgresBullFixtures } from './helpers/postgres-bullmq.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres-server.js';

const POLL = { timeout: 30_000, interval: 100 };
const HOUR = 3_600_000;

describe('PostgreSQL finished counts', () => {
  let server: TestPostgres;
  let bull: PostgresBullFixtures;

  beforeAll(async () => {
    server = await startTestPostgres();
    bull = new PostgresBullFixtures(server);
    await bull.migrate();
  });
  afterAll(async () => {
    await bull?.close();
    await server?.stop();
  });

  /** The collector's completed/failed of every given queue against BullMQ's getJobCounts(), read after it. */
  const expectExact = async (collector: PostgresSnapshotCollector, queues: Queue[]): Promise<void> => {
    const snap = await collector.collect();
    expect(snap.ok, snap.error).toBe(true);
    for (const q of queues) {
      const truth = await q.getJobCounts('completed', 'failed');
      const mine = snap.queues.find((s) => s.ref.name === q.name);
      expect({ queue: q.name, completed: mine?.jobs.completed, failed: mine?.jobs.failed }).toEqual({ queue: q.name, ...truth });
    }
  };

  /** Settled: BullMQ's own numbers stop moving (a worker's retention runs in the finishing transaction). */
  const settle = async (q: Queue, want: { completed: number; failed: number }): Promise<void> => {
    await expect.poll(async () => q.getJobCounts('completed', 'failed'), POLL).toEqual(want);
  };

  it('recounts only queues whose events can have changed them, and stays equal to getJobCounts() through retention, clean and reprocess', async () => {
    const collector = new PostgresSnapshotCollector(server.pool(2), { finishedRecountMs: HOUR, batchSize: 2 });
    const idle = bull.queue('fc-idle');
    const busy = bull.queue('fc-busy');
    const other = bull.queue('fc-other');
    const w = bull.worker('fc-idle', async (job) => {
      if (job.name === 'fail') throw new Error('no');
      return 1;
    });
    for (let i = 0; i < 4; i++) await idle.add('ok', {});
    for (let i = 0; i < 2; i++) await idle.add('fail', {});
    await settle(idle, { completed: 4, failed: 2 });
    await w.close();

    await expectExact(collector, [idle, busy, other]);
    expect(collector.lastRecounted).toBeGreaterThanOrEqual(3);
    // Nothing moved: later collections reuse every count (the watermark settles over the first few).
    await collector.collect();
    await collector.collect();
    await expectExact(collector, [idle, busy, other]);
    expect(collector.lastRecounted).toBe(0);

    // Only adds on a queue (events `added`, `waiting`): not a reason to recount.
    await other.add('x', {});
    await expectExact(collector, [idle, busy, other]);
    expect(collector.lastRecounted).toBe(0);

    // Completions with count retention: each finishing transaction deletes older completed jobs of the queue.
    const wb = bull.worker(
      'fc-busy',
      async (job) => {
        if (job.name === 'fail') throw new Error('no');
        return 1;
      },
      { removeOnComplete: { count: 3 }, removeOnFail: { count: 5 } },
    );
    for (let i = 0; i < 7; i++) await busy.add('ok', {});
    for (let i = 0; i < 3; i++) await busy.add('fail', {});
    await settle(busy, { completed: 3, failed: 3 });
    await expectExact(collector, [idle, busy, other]);
    expect(collector.lastRecounted).toBe(1);
    await wb.close();

    // clean() of completed jobs (event `cleaned`).
    await busy.clean(0, 2, 'completed');
    await settle(busy, { completed: 1, failed: 3 });
    await expectExact(collector, [idle, busy, other]);

    // A failed job retried by hand (reprocess: `waiting` with prev `failed`), on the queue that was idle.
    const failed = await idle.getFailed();
    await failed[0]!.retry('failed');
    await settle(idle, { completed: 4, failed: 1 });
    await expectExact(collector, [idle, busy, other]);
    await expectExact(collector, [idle, busy, other]);
    expect(collector.lastRecounted).toBe(0);
  });

  it('counts a finishing transaction that commits after later event ids were read', async () => {
    const collector = new PostgresSnapshotCollector(server.pool(2), { finishedRecountMs: HOUR });
    const late = bull.queue('fc-late');
    const noise = bull.queue('fc-noise');
    const job = await late.add('x', {});
    await noise.add('n', {});
    await expectExact(collector, [late, noise]);

    // A worker-like transaction, in the order BullMQ's move_to_completed writes: the job row, then its event (an id
    // from the global sequence). It stays open while producers commit later ids and collections run.
    const writer = await server.pool(1).connect();
    try {
      await writer.query('BEGIN');
      await writer.query(`UPDATE bullmq.job SET state = 'completed', finished_at_ms = $2 WHERE queue = 'fc-late' AND id = $1`, [job.id, Date.now()]);
      await writer.query(`SELECT bullmq.publish_event('fc-late', 'completed', jsonb_build_object('jobId', $1::text, 'prev', 'active'))`, [job.id]);
      for (let i = 0; i < 5; i++) {
        await noise.add('n', {});
        await late.add('y', {});
        await expectExact(collector, [late, noise]);
      }
      await writer.query('COMMIT');
    } finally {
      writer.release();
    }
    expect((await late.getJobCounts('completed')).completed).toBe(1);
    await expectExact(collector, [late, noise]);
  });

  it('with finishedRecountMs 0 counts every queue at every collection', async () => {
    const collector = new PostgresSnapshotCollector(server.pool(1), { finishedRecountMs: 0 });
    const names = await collector.discover();
    await collector.collect();
    await collector.collect();
    expect(collector.lastRecounted).toBe(names.length);
  });
});
