// The PostgreSQL collection against real BullMQ-on-PostgreSQL producers and workers: every gauge against ground truth
// (what the test enqueued, BullMQ's own getJobCounts(), the jobs' own timestamps), read-only and bounded by its
// statement timeout.
import type { Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parkedJobs, type QueueState } from '../src/domain/queue-snapshot.js';
import pg from 'pg';
import { PostgresEventReader } from '../src/postgres/event-reader.js';
import { PostgresSnapshotCollector } from '../src/postgres/snapshot.js';
import { PostgresBullFixtures } from './helpers/postgres-bullmq.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres-server.js';

const POLL = { timeout: 30_000, interval: 100 };

describe('PostgreSQL snapshot', () => {
  let server: TestPostgres;
  let bull: PostgresBullFixtures;
  let collector: PostgresSnapshotCollector;
  const release: Array<() => void> = [];

  beforeAll(async () => {
    server = await startTestPostgres();
    bull = new PostgresBullFixtures(server);
    await bull.migrate();
    collector = new PostgresSnapshotCollector(server.pool(2), { batchSize: 3 });
  });
  afterAll(async () => {
    for (const r of release) r();
    await bull?.close();
    await server?.stop();
  });

  const stateOf = async (name: string): Promise<QueueState> => {
    const snap = await collector.collect();
    expect(snap.ok, snap.error).toBe(true);
    const q = snap.queues.find((s) => s.ref.name === name);
    if (!q) throw new Error(`queue ${name} not in the snapshot`);
    return q;
  };

  it('counts each state like BullMQ getJobCounts(), with overdue delayed and the head job age', async () => {
    // Due almost at once, but no worker fetches on this queue, so it stays delayed: overdue.
    const { plain, due } = await bull.addMixedJobs('mixed');

    await expect.poll(async () => (await stateOf('mixed')).delayedOverdue, POLL).toBe(1);
    const before = Date.now();
    const s = await stateOf('mixed');
    const after = Date.now();
    expect(s.jobs).toEqual(await bull.countsOf('mixed'));
    // What was enqueued: 3 plain + 2 children waiting, 2 prioritized, 3 delayed, 1 flow parent.
    expect(s.jobs).toMatchObject({ waiting: 5, prioritized: 2, delayed: 3, waiting_children: 1, active: 0 });
    expect(due.opts.delay).toBe(1);
    expect(s.paused).toBe(false);
    expect(s.orphanedActive).toBe(0);
    // The next job to run is the first plain one (priority 0 before prioritized), eligible since it was added.
    // Database and test share the machine's clock: head timestamp + age lies between the reads around collect().
    const headAt = plain[0]!.timestamp;
    expect(headAt + s.oldestWaitingAgeSeconds * 1000).toBeGreaterThanOrEqual(before - 1);
    expect(headAt + s.oldestWaitingAgeSeconds * 1000).toBeLessThanOrEqual(after + 1);
  });

  it('finds a queue that has jobs but no meta row (producers with skipMetasUpdate, or a meta write still in flight)', async () => {
    const q = bull.queue('no-meta', { skipMetasUpdate: true });
    await q.add('a', {});
    await q.add('b', {});
    // Ground truth from the database: jobs, and no meta row for the queue.
    const pool = server.pool(1);
    expect((await pool.query(`SELECT count(*)::int AS n FROM bullmq.meta WHERE queue = 'no-meta'`)).rows[0].n).toBe(0);
    expect((await pool.query(`SELECT count(*)::int AS n FROM bullmq.job WHERE queue = 'no-meta'`)).rows[0].n).toBe(2);
    expect((await stateOf('no-meta')).jobs.waiting).toBe(2);
  });

  it('reports a paused queue, its backlog, and a dead-letter queue beside its source', async () => {
    const q = bull.queue('orders');
    const dlq = bull.queue('orders-dlq');
    await q.add('a', {});
    await q.pause();
    await dlq.add('dead', {});
    await dlq.add('dead', {});
    const snap = await collector.collect();
    const orders = snap.queues.find((x) => x.ref.name === 'orders')!;
    const dead = snap.queues.find((x) => x.ref.name === 'orders-dlq')!;
    expect(orders.paused).toBe(true);
    expect(orders.jobs.waiting).toBe(1);
    expect(orders.dlqOf).toBeUndefined();
    expect(dead.dlqOf).toBe('orders');
    expect(parkedJobs(dead)).toBe(2);
    expect(snap.queuesByPrefix.bullmq).toBe(snap.queues.length);
    await q.resume();
    expect((await stateOf('orders')).paused).toBe(false);
  });

  it('counts finished jobs, active ones with their age, workers by application_name, and an expired lock as orphaned', async () => {
    const q = bull.queue('work');
    let hold!: () => void;
    const held = new Promise<void>((r) => (hold = r));
    release.push(hold);
    const started: Job[] = [];
    bull.worker(
      'work',
      async (job) => {
        if (job.name === 'fail') throw new Error('no');
        if (job.name === 'hold') {
          started.push(job);
          await held;
        }
        return 1;
      },
      { name: 'w one', concurrency: 4 },
    );
    for (let i = 0; i < 3; i++) await q.add('ok', {});
    for (let i = 0; i < 2; i++) await q.add('fail', {});
    await q.add('hold', {});
    await expect
      .poll(async () => {
        const s = await stateOf('work');
        return [s.jobs.completed, s.jobs.failed, s.jobs.active];
      }, POLL)
      .toEqual([3, 2, 1]);
    const before = Date.now();
    const s = await stateOf('work');
    const after = Date.now();
    expect(s.workers).toBe(1);
    expect(s.orphanedActive).toBe(0);
    const processedOn = (await q.getJob(started[0]!.id!))!.processedOn!;
    expect(processedOn + s.oldestActiveAgeSeconds * 1000).toBeGreaterThanOrEqual(before - 1);
    expect(processedOn + s.oldestActiveAgeSeconds * 1000).toBeLessThanOrEqual(after + 1);

    // A worker that stops renewing its lock (closed without waiting for its job) leaves the job active with an
    // expiring lock, and nothing reclaims it while no worker runs the stalled check: orphaned once it expires.
    const q2 = bull.queue('stuck');
    const w2 = bull.worker('stuck', () => new Promise(() => undefined), { lockDuration: 1_000, stalledInterval: 3_600_000 });
    await q2.add('x', {});
    await expect.poll(async () => (await stateOf('stuck')).jobs.active, POLL).toBe(1);
    await w2.close(true);
    await expect.poll(async () => (await stateOf('stuck')).orphanedActive, POLL).toBe(1);
    const stuck = await stateOf('stuck');
    expect(stuck.jobs.active).toBe(1);
    expect(stuck.workers).toBe(0);
  });

  it('reports a queue held by its global rate limit', async () => {
    const q = bull.queue('limited');
    await q.setGlobalRateLimit(1, 3_600_000);
    bull.worker('limited', async () => 1);
    await q.add('a', {});
    await q.add('b', {});
    await expect.poll(async () => (await stateOf('limited')).jobs.completed, POLL).toBe(1);
    const s = await stateOf('limited');
    expect(s.rateLimited).toBe(true);
    expect(s.jobs.waiting).toBe(1);
    expect((await stateOf('mixed')).rateLimited).toBe(false);
  });

  it('discovers the queues of the schema, and batches give the same numbers as one statement', async () => {
    const names = await collector.discover();
    expect(names).toEqual(expect.arrayContaining(['mixed', 'orders', 'orders-dlq', 'work', 'stuck', 'limited']));
    const single = new PostgresSnapshotCollector(server.pool(1), { batchSize: 1000 });
    const strip = (qs: QueueState[]) => qs.map((x) => ({ name: x.ref.name, jobs: x.jobs, paused: x.paused })).sort((a, b) => a.name.localeCompare(b.name));
    expect(strip(await single.readQueues(names))).toEqual(strip(await collector.readQueues(names)));
  });

  it('needs only the grants docs/postgres.md lists: a role with them reads the same gauges and events, and can write nothing', async () => {
    const admin = server.pool(1);
    await admin.query(`
      CREATE ROLE queuelens_ro LOGIN PASSWORD 'ro-secret';
      GRANT USAGE ON SCHEMA bullmq TO queuelens_ro;
      GRANT SELECT ON bullmq.job, bullmq.meta, bullmq.event, bullmq.rate_limit, bullmq.job_dependency TO queuelens_ro;
      GRANT SELECT ON SEQUENCE bullmq.event_seq TO queuelens_ro;`);
    const ro = new pg.Pool({ connectionString: server.urlFor({ user: 'queuelens_ro', password: 'ro-secret' }), max: 2 });
    ro.on('error', () => undefined);
    try {
      const mine = await new PostgresSnapshotCollector(ro).collect();
      expect(mine.ok, mine.error).toBe(true);
      const theirs = await collector.collect();
      const view = (qs: QueueState[]) =>
        qs.map((x) => ({ name: x.ref.name, jobs: x.jobs, paused: x.paused, workers: x.workers, dlqOf: x.dlqOf })).sort((a, b) => a.name.localeCompare(b.name));
      expect(view(mine.queues)).toEqual(view(theirs.queues));
      // Workers of another role are still counted: application_name is visible to every role.
      expect(mine.queues.find((x) => x.ref.name === 'work')!.workers).toBe(1);
      const events = await new PostgresEventReader(ro).poll(['mixed']);
      expect(events.events.length).toBeGreaterThan(0);
      await expect(ro.query("UPDATE bullmq.meta SET value = '0' WHERE false")).rejects.toThrow(/permission denied/);
      await expect(ro.query('DELETE FROM bullmq.event')).rejects.toThrow(/permission denied/);
    } finally {
      await ro.end();
    }
  });

  it('neither waits on nor blocks workers: row locks do not stop it, an exclusive lock times it out', async () => {
    const pool = server.pool(2);
    const locker = await pool.connect();
    try {
      // A worker-like transaction holding row locks on every job: the collection still reads (no FOR UPDATE).
      await locker.query('BEGIN');
      await locker.query('SELECT id FROM bullmq.job FOR UPDATE');
      const snap = await new PostgresSnapshotCollector(pool, { statementTimeoutMs: 60_000 }).collect();
      expect(snap.ok, snap.error).toBe(true);
      await locker.query('ROLLBACK');
      // An ACCESS EXCLUSIVE lock (say, a migration) makes it fail by its statement timeout, with the reason.
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE bullmq.job IN ACCESS EXCLUSIVE MODE');
      const blocked = await new PostgresSnapshotCollector(pool, { statementTimeoutMs: 200 }).collect();
      expect(blocked.ok).toBe(false);
      expect(blocked.redisUp).toBe(true);
      expect(blocked.error).toMatch(/statement timeout/);
      await locker.query('ROLLBACK');
    } finally {
      locker.release();
    }
  });

  it('says when the server is gone, and recovers by itself', async () => {
    // BullMQ's workers first: a pg client they have checked out reports the lost connection as an uncaught error.
    await bull.close();
    const pool = server.pool(2);
    const c = new PostgresSnapshotCollector(pool);
    expect((await c.collect()).ok).toBe(true);
    await server.kill();
    const down = await c.collect();
    expect(down.ok).toBe(false);
    expect(down.redisUp, down.error).toBe(false);
    expect(down.queues).toEqual([]);
    await server.restart();
    await expect.poll(async () => (await c.collect()).ok, POLL).toBe(true);
  });
});
