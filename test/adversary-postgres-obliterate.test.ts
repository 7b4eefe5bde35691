// Adversarial probe (issue 18): a queue obliterated and re-created under the same name. BullMQ's obliterate deletes
// the queue's jobs, events and meta and publishes no event, so a collector that recounts completed/failed only when an
// event says they may have changed keeps the old queue's counts. Ground truth: getJobCounts() of the new queue.
import type { Job } from 'bullmq';
import { beforeAll, describe, expect, it } from 'vitest';
import { PostgresSnapshotCollector } from '../src/postgres/snapshot.js';
import type { QueueState } from '../src/domain/queue-snapshot.js';
import { usePostgresSuite } from './helpers/postgres-suite.js';

const POLL = { timeout: 60_000, interval: 200 };

describe('adversary: obliterate and re-create on PostgreSQL', () => {
  const pg = usePostgresSuite();
  let collector: PostgresSnapshotCollector;

  beforeAll(() => {
    // No periodic recount within the test: only what the database says may trigger one.
    collector = new PostgresSnapshotCollector(pg.server.pool(2), { finishedRecountMs: 3_600_000 });
  });

  const stateOf = async (name: string): Promise<QueueState | undefined> => {
    const snap = await collector.collect();
    expect(snap.ok, snap.error).toBe(true);
    return snap.queues.find((s) => s.ref.name === name);
  };

  it('forgets the finished jobs of an obliterated queue, whether or not it is re-created before the next collection', async () => {
    const first = pg.bull.queue('phoenix');
    const w = pg.bull.worker('phoenix', async (job: Job) => {
      if (job.name === 'bad') throw new Error('no');
      return 1;
    });
    for (let i = 0; i < 3; i++) await first.add('ok', {});
    await first.add('bad', {});
    await expect.poll(async () => (await first.getJobCounts('completed', 'failed')) as Record<string, number>, POLL).toEqual({ completed: 3, failed: 1 });
    await w.close();
    // Several collections, so the collector's watermark passes the finishing events and its counts stand on no event.
    for (let i = 0; i < 4; i++) expect((await stateOf('phoenix'))?.jobs).toMatchObject({ completed: 3, failed: 1 });

    // Obliterated and, before the next collection, re-created with two waiting jobs and no worker.
    await first.obliterate({ force: true });
    const second = pg.bull.queue('phoenix');
    await second.add('again', {});
    await second.add('again', {});
    const truth = await second.getJobCounts('waiting', 'completed', 'failed');
    expect(truth).toEqual({ waiting: 2, completed: 0, failed: 0 });
    expect((await stateOf('phoenix'))?.jobs).toMatchObject(truth);

    // Obliterated again and left gone: while still listed, nothing of it remains.
    const w2 = pg.bull.worker('phoenix', async () => 1);
    await expect.poll(async () => (await second.getJobCounts('completed')).completed, POLL).toBe(2);
    await w2.close();
    for (let i = 0; i < 4; i++) expect((await stateOf('phoenix'))?.jobs).toMatchObject({ waiting: 0, completed: 2 });
    await second.obliterate({ force: true });
    const after = await stateOf('phoenix');
    if (after) expect(after.jobs).toMatchObject({ waiting: 0, completed: 0, failed: 0 });
  });
});
