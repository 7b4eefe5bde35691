// The PostgreSQL event pipeline the sidecar runs (src/postgres/event-follower.ts): fenced lease, exact reader, the
// lifecycle machine, reader state and accounting committed in one fenced transaction, read back by every replica.
// Ground truth: what the test enqueued and what BullMQ's tables hold (job states, the event rows themselves).
import { spawn } from 'node:child_process';
import { createConnection, createServer, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from 'bullmq';
import { createLogger } from '../src/log/logger.js';
import type { QueueEventAccounting } from '../src/domain/event-accounting.js';
import { QueueChanges } from '../src/domain/queue-changes.js';
import { queueId } from '../src/domain/queue-ref.js';
import { commitEventState, ensureOwnSchema, readPostgresEventAccounting } from '../src/postgres/accounting-store.js';
import { PostgresEventFollower, type PostgresEventFollowerOptions } from '../src/postgres/event-follower.js';
import { PgLease } from '../src/postgres/lease.js';
import { PostgresBullFixtures } from './helpers/postgres-bullmq.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres-server.js';

const POLL = { timeout: 60_000, interval: 100 };
const SCHEMA = 'bullmq';
const OWN = 'queuelens';

/** What a queue's accounting says, in the shape the ground truth is computed in. */
interface Summary {
  counters: Record<string, number>;
  histograms: Record<string, number>;
  lost: number;
  read: number;
}

function summarize(all: QueueEventAccounting[], queue: string): Summary | undefined {
  const q = all.find((a) => a.queue.name === queue && a.queue.prefix === SCHEMA);
  if (!q) return undefined;
  const counters: Record<string, number> = {};
  for (const c of q.stats.counters) counters[c.counter] = (counters[c.counter] ?? 0) + c.value;
  const histograms: Record<string, number> = {};
  for (const h of q.stats.histograms) histograms[`${h.histogram}:${h.label}`] = (histograms[`${h.histogram}:${h.label}`] ?? 0) + h.count;
  return { counters, histograms, lost: q.stats.reader.lost, read: q.stats.reader.read };
}

describe('PostgreSQL event follower', () => {
  let server: TestPostgres;
  let bull: PostgresBullFixtures;
  let pool: pg.Pool;
  const lines: string[] = [];
  const log = createLogger({ level: 'info', destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }) });
  const followers: PostgresEventFollower[] = [];
  const pools: pg.Pool[] = [];

  beforeAll(async () => {
    server = await startTestPostgres();
    bull = new PostgresBullFixtures(server);
    await bull.migrate();
    pool = server.pool(6);
  });
  // Each test's followers are closed after it, passed or failed: one left running would keep the lease (renewing it
  // for ever) and every later test would wait for a leadership it can never get.
  afterEach(async () => {
    for (const f of followers.splice(0)) await f.close();
  });
  afterAll(async () => {
    await bull?.close();
    for (const p of pools) await p.end().catch(() => undefined);
    await server?.stop();
  });

  /** A pool whose sessions carry `name`, so a test can terminate exactly them. */
  const namedPool = (name: string): pg.Pool => {
    const p = new pg.Pool({ connectionString: server.url, max: 4, application_name: name, connectionTimeoutMillis: 5_000 });
    p.on('error', () => undefined);
    pools.push(p);
    return p;
  };
  const follower = (o: Partial<PostgresEventFollowerOptions> = {}): PostgresEventFollower => {
    const f = new PostgresEventFollower({ pool: o.pool ?? namedPool('ql-follower'), schema: SCHEMA, ownSchema: OWN, log, leaseMs: 3_000, pollMs: 200, ...o });
    followers.push(f);
    return f;
  };
  const refs = (...names: string[]) => names.map((name) => ({ prefix: SCHEMA, name }));
  const readBack = () => readPostgresEventAccounting(pool, { schema: SCHEMA, ownSchema: OWN });
  const head = async (): Promise<bigint> => BigInt((await pool.query<{ v: string }>('SELECT last_value::text AS v FROM bullmq.event_seq')).rows[0]!.v);
  const committedWatermark = async (): Promise<bigint> => {
    const r = await pool.query<{ w: string }>(`SELECT watermark::text AS w FROM ${OWN}.event_reader WHERE source = $1`, [SCHEMA]).catch(() => ({ rows: [] }));
    return r.rows[0] ? BigInt(r.rows[0].w) : -1n;
  };
  /** Waits until the committed watermark passed every id taken so far: the committed accounting covers them all. */
  const caughtUp = async (): Promise<void> => {
    const top = await head();
    await expect.poll(committedWatermark, POLL).toBeGreaterThanOrEqual(top);
  };
  const summary = async (queue: string): Promise<Summary | undefined> => summarize(await readBack(), queue);
  const finished = async (queue: string): Promise<{ completed: number; failed: number; jobs: number }> => {
    const { rows } = await pool.query<{ state: string; n: string }>(
      'SELECT state::text AS state, count(*)::text AS n FROM bullmq.job WHERE queue = $1 GROUP BY state',
      [queue],
    );
    const by = Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
    return { completed: by.completed ?? 0, failed: by.failed ?? 0, jobs: rows.reduce((n, r) => n + Number(r.n), 0) };
  };

  /**
   * Completions, immediate retries, backoff retries (through `delayed`), final failures, delayed adds and a
   * deduplicated add, processed by a real BullMQ worker. Returns the ground truth: job rows and states from the job
   * table, retries from the processor's own calls.
   */
  async function workload(name: string, scale = 1): Promise<{ summary: Omit<Summary, 'read'>; processingCompletedMs: number }> {
    const q = bull.queue(name);
    let throws = 0;
    let adds = 0;
    const add = async (kind: string, opts: Record<string, unknown> = {}) => {
      adds += 1;
      await q.add(kind, { kind }, opts);
    };
    for (let s = 0; s < scale; s++) {
      for (let i = 0; i < 6; i++) await add('ok');
      for (let i = 0; i < 3; i++) await add('retry', { attempts: 2 });
      for (let i = 0; i < 2; i++) await add('retry', { attempts: 2, backoff: { type: 'fixed', delay: 50 } });
      for (let i = 0; i < 2; i++) await add('fail', { attempts: 1 });
      for (let i = 0; i < 2; i++) await add('ok', { delay: 100 });
      await add('ok', { deduplication: { id: `d-${name}-${s}` } });
      await add('ok', { deduplication: { id: `d-${name}-${s}` } });
    }
    const w = bull.worker(
      name,
      async (job: Job) => {
        const kind = (job.data as { kind: string }).kind;
        if (kind === 'fail' || (kind === 'retry' && job.attemptsMade === 0)) {
          throws += 1;
          throw new Error(`scripted ${kind}`);
        }
        return 'done';
      },
      { concurrency: 2 },
    );
    await expect
      .poll(async () => {
        const f = await finished(name);
        return f.completed + f.failed;
      }, POLL)
      .toBe(16 * scale);
    await w.close();
    const f = await finished(name);
    const retried = throws - f.failed;
    const { rows } = await pool.query<{ ms: string }>(
      `SELECT coalesce(sum(c.created_at_ms - (SELECT max(a.created_at_ms) FROM bullmq.event a
                 WHERE a.queue = c.queue AND a.event = 'active' AND a.data->>'jobId' = c.data->>'jobId' AND a.id < c.id)), 0)::text AS ms
         FROM bullmq.event c WHERE c.queue = $1 AND c.event = 'completed'`,
      [name],
    );
    return {
      summary: {
        counters: { added: f.jobs, deduplicated: adds - f.jobs, completed: f.completed, failed: f.failed, retried },
        histograms: {
          'wait:first': f.jobs,
          'wait:retry': retried,
          'processing:completed': f.completed,
          'processing:failed': f.failed,
          'processing:retried': retried,
          'e2e:completed': f.completed,
          'e2e:failed': f.failed,
        },
        lost: 0,
      },
      processingCompletedMs: Number(rows[0]!.ms),
    };
  }

  it('counts a scripted workload exactly, and two replicas read back the same accounting from one leader', async () => {
    // A long lease: leadership does not move during the test even when the machine is slow to renew.
    const a = follower({ leaseMs: 30_000 });
    const b = follower({ leaseMs: 30_000 });
    a.setQueues(refs('script'));
    b.setQueues(refs('script'));
    await a.start();
    await b.start();
    await expect.poll(() => Number(a.isLeader) + Number(b.isLeader), POLL).toBe(1);
    const truth = await workload('script');
    expect(truth.summary.counters).toMatchObject({ added: 16, deduplicated: 1, completed: 14, failed: 2, retried: 5 });
    await caughtUp();
    const got = await summary('script');
    expect(got).toEqual({ ...truth.summary, read: expect.any(Number) });
    const rows = await pool.query<{ n: string }>("SELECT count(*)::text AS n FROM bullmq.event WHERE queue = 'script'");
    expect(got!.read).toBe(Number(rows.rows[0]!.n));
    const all = await readBack();
    const processing = all.find((x) => x.queue.name === 'script')!.stats.histograms.find((h) => h.histogram === 'processing' && h.label === 'completed')!;
    expect(Math.round(processing.sumSeconds * 1000)).toBe(truth.processingCompletedMs);
    // Every replica reads back the same plain data (the lag aside, which ages on the database clock).
    const strip = (xs: QueueEventAccounting[]) => xs.map((x) => ({ ...x, stats: { ...x.stats, reader: { ...x.stats.reader, lagSeconds: 0 } } }));
    const other = server.pool(2);
    expect(strip(await readPostgresEventAccounting(other, { schema: SCHEMA, ownSchema: OWN }))).toEqual(strip(all));
    // Never two leaders (a renewal late past its lease may leave none for a moment).
    expect(Number(a.isLeader) + Number(b.isLeader)).toBeLessThanOrEqual(1);
    await a.close();
    await b.close();
  });

  it('refuses the commit of a deposed leader; the next leader counts what it read exactly once', async () => {
    // A long lease: the deposed leader neither renews nor notices before it tries to commit.
    const a = follower({ leaseMs: 600_000 });
    a.setQueues(refs('deposed'));
    const q = bull.queue('deposed');
    await q.add('job', {});
    await a.start();
    await expect.poll(() => a.isLeader, POLL).toBe(true);
    await caughtUp();
    expect((await summary('deposed'))?.counters.added).toBe(1);
    // Another replica takes over (the fence moves on) while `a` still believes it leads.
    await pool.query(`UPDATE ${OWN}.event_lease SET holder = 'intruder', fence = fence + 1 WHERE source = $1`, [SCHEMA]);
    const mark = lines.length;
    for (let i = 0; i < 3; i++) await q.add('job', {});
    await expect.poll(() => lines.slice(mark).some((l) => l.includes('a fenced commit found another fence')), POLL).toBe(true);
    expect(a.isLeader).toBe(false);
    // Nothing of what `a` read reached the database.
    expect((await summary('deposed'))?.counters.added).toBe(1);
    // The intruder goes away; a new leader resumes from the committed state: each row once.
    await pool.query(`UPDATE ${OWN}.event_lease SET expires_at = '-infinity' WHERE holder = 'intruder'`);
    await a.close();
    const b = follower();
    b.setQueues(refs('deposed'));
    await b.start();
    await expect.poll(() => b.isLeader, POLL).toBe(true);
    await caughtUp();
    const { rows } = await pool.query<{ n: string }>("SELECT count(*)::text AS n FROM bullmq.job WHERE queue = 'deposed'");
    expect((await summary('deposed'))?.counters.added).toBe(Number(rows[0]!.n));
    expect(Number(rows[0]!.n)).toBe(4);
    await b.close();
  });

  it('a commit refused under an earlier fence does not end the term held now (the lease lost and taken again meanwhile)', async () => {
    await ensureOwnSchema(pool, OWN);
    const lease = new PgLease({ pool: namedPool('ql-lease'), ownSchema: OWN, source: 'lease-terms', leaseMs: 600_000, log, onChange: () => undefined });
    try {
      lease.start();
      await expect.poll(() => lease.isLeader, POLL).toBe(true);
      const now = lease.fence;
      // A pass of the term before came back from a commit the lease row refused: it belongs to that term only.
      lease.lost('a fenced commit found another fence', now - 1n);
      expect(lease.isLeader).toBe(true);
      expect(lease.fence).toBe(now);
      lease.lost('a fenced commit found another fence', now);
      expect(lease.isLeader).toBe(false);
    } finally {
      await lease.close();
    }
  });

  it('a commit under an old fence changes nothing', async () => {
    const { rows } = await pool.query<{ fence: string }>(`SELECT fence::text AS fence FROM ${OWN}.event_lease WHERE source = $1`, [SCHEMA]);
    const current = BigInt(rows[0]!.fence);
    const before = await pool.query(`SELECT * FROM ${OWN}.event_reader`);
    const accBefore = await pool.query(`SELECT source, queue, fields FROM ${OWN}.event_accounting ORDER BY queue`);
    const ok = await commitEventState(pool, OWN, {
      source: SCHEMA,
      fence: current - 1n,
      state: { watermark: 999_999n, delivered: [], queues: [] },
      readAgoMs: 0,
      queues: [{ queue: 'deposed', fields: { 'c|added|': 1000 }, behindSinceMs: null }],
    });
    expect(ok).toBe(false);
    expect((await pool.query(`SELECT * FROM ${OWN}.event_reader`)).rows).toEqual(before.rows);
    expect((await pool.query(`SELECT source, queue, fields FROM ${OWN}.event_accounting ORDER BY queue`)).rows).toEqual(accBefore.rows);
  });
  it('is woken by LISTEN: with no fallback poll in reach, each add is counted and marks the queue changed', async () => {
    const changes = new QueueChanges();
    const f = follower({ pollMs: 600_000, changes });
    f.setQueues(refs('woken'));
    const q = bull.queue('woken');
    await q.getVersion();
    const id = queueId(refs('woken')[0]!);
    await f.start();
    // Leadership comes first; the queue is followed on the term's first pass, and its first commit (the fresh
    // queue's fields, nothing counted) follows that pass.
    await expect.poll(() => f.isLeader && changes.isFollowed(id), POLL).toBe(true);
    await expect.poll(async () => (await summary('woken'))?.read, POLL).toBe(0);
    expect(changes.isWhole).toBe(true);
    // Collected across polls: a take() may come between the commit and the marks made right after it returns.
    const seen = { state: new Set<string>(), accounting: new Set<string>() };
    const marked = (kind: 'state' | 'accounting') => {
      for (const x of changes.take(kind)) seen[kind].add(x);
      return seen[kind];
    };
    for (let n = 1; n <= 3; n++) {
      changes.take('state');
      changes.take('accounting');
      seen.state.clear();
      seen.accounting.clear();
      await q.add('job', {});
      await expect.poll(async () => (await summary('woken'))?.counters.added, POLL).toBe(n);
      // Marked right after the commit returns, which a read-back may see a moment before.
      await expect.poll(() => marked('state').has(id) && marked('accounting').has(id), POLL).toBe(true);
      expect(marked('state')).toEqual(new Set([id]));
    }
    await f.close();
    expect(changes.isWhole).toBe(false);
    expect(changes.isFollowed(id)).toBe(false);
  });

  it('reads at once when LISTEN takes effect: a row NOTIFYed before it is not left for the fallback poll', async () => {
    // A proxy to the server that holds the LISTEN session's link (its startup names it) until released, and passes
    // every other link through: the follower's term starts, commits and sleeps before its LISTEN takes effect.
    const held: Array<() => void> = [];
    let holding = true;
    const links = new Set<Socket>();
    const proxy = createServer((client) => {
      const upstream = createConnection(Number(new URL(server.url).port), '127.0.0.1');
      for (const x of [client, upstream]) {
        links.add(x);
        x.on('error', () => undefined);
        x.on('close', () => links.delete(x));
      }
      let listenLink: boolean | undefined;
      client.on('data', (d: Buffer) => {
        listenLink ??= d.includes('queuelens:events:listen');
        if (listenLink && holding) held.push(() => upstream.write(d));
        else upstream.write(d);
      });
      upstream.on('data', (d: Buffer) => client.write(d));
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const release = () => {
      holding = false;
      for (const send of held.splice(0)) send();
    };
    let f: PostgresEventFollower | undefined;
    try {
      const url = new URL(server.url);
      url.port = String((proxy.address() as { port: number }).port);
      // No connection timeout: the held LISTEN session waits for the release, however long the test takes.
      const proxied = new pg.Pool({ connectionString: url.toString(), max: 4, application_name: 'ql-proxied' });
      proxied.on('error', () => undefined);
      pools.push(proxied);
      f = follower({ pool: proxied, pollMs: 600_000 });
      f.setQueues(refs('listen-late'));
      const q = bull.queue('listen-late');
      await q.getVersion();
      await f.start();
      // The term's first pass committed the fresh queue, and its LISTEN session is on the way but held.
      await expect.poll(async () => (await summary('listen-late'))?.read, POLL).toBe(0);
      await expect.poll(() => held.length, POLL).toBeGreaterThan(0);
      await q.add('job', {});
      release();
      await expect.poll(async () => (await summary('listen-late'))?.counters.added, POLL).toBe(1);
    } finally {
      release();
      // Closed while its links still work: it releases the lease for the tests after it.
      await f?.close();
      for (const x of links) x.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('follows a queue with a hostile name and job names that hold the field separator', async () => {
    const name = `we'ird "q" ü|$1 ;-- \\`;
    const f = follower({ lifecycle: { jobNameLabel: true } });
    f.setQueues(refs(name));
    const q = bull.queue(name);
    await q.add('a|b', {});
    await q.add(`x'y"z`, {});
    await f.start();
    const w = bull.worker(name, async () => 'ok');
    await expect.poll(async () => (await finished(name)).completed, POLL).toBe(2);
    await w.close();
    await caughtUp();
    const acc = (await readBack()).find((a) => a.queue.name === name)!;
    const completed = acc.stats.counters.filter((c) => c.counter === 'completed').map((c) => [c.jobName, c.value]);
    expect(completed.sort()).toEqual([
      ['a|b', 1],
      [`x'y"z`, 1],
    ]);
    await f.close();
  });

  it('deletes the accounting of a queue gone longer than the retention, and only of such a queue', async () => {
    const f = follower({ retentionMs: 0, maintenanceMs: 100 });
    f.setQueues(refs('kept', 'dropped'));
    for (const n of ['kept', 'dropped']) await bull.queue(n).add('job', {});
    await f.start();
    await caughtUp();
    expect((await summary('dropped'))?.counters.added).toBe(1);
    const ours = await pool.query<{ queue: string }>(`SELECT queue FROM ${OWN}.event_accounting WHERE source = $1`, [SCHEMA]);
    const others = ours.rows.map((r) => r.queue).filter((q) => q !== 'kept' && q !== 'dropped');
    f.setQueues(refs('kept', ...others));
    await expect.poll(async () => (await summary('dropped'))?.counters.added, POLL).toBeUndefined();
    expect((await summary('kept'))?.counters.added).toBe(1);
    // Listed again, it is a new queue to the reader: read from its oldest retained row.
    f.setQueues(refs('kept', 'dropped', ...others));
    await expect.poll(async () => (await summary('dropped'))?.counters.added, POLL).toBe(1);
    await f.close();
  });

  it('shows no lag while a leader keeps up, and growing lag on every replica once none does', async () => {
    const f = follower({ lagRefreshMs: 200 });
    f.setQueues(refs('lagging'));
    await bull.queue('lagging').add('job', {});
    await f.start();
    await caughtUp();
    const lag = async () => (await readBack()).find((a) => a.queue.name === 'lagging')?.stats.reader.lagSeconds;
    await expect.poll(lag, POLL).toBe(0);
    await f.close();
    // No heartbeat any more: past the grace, the caught-up queue's lag grows with the database clock.
    await expect.poll(lag, POLL).toBeGreaterThan(0);
    const first = (await lag())!;
    await expect.poll(lag, POLL).toBeGreaterThan(first);
  });

  it('counts a row whose writer commits after later ids were committed, once', async () => {
    const f = follower();
    f.setQueues(refs('late'));
    const q = bull.queue('late');
    await q.getVersion();
    await f.start();
    await expect.poll(() => f.isLeader, POLL).toBe(true);
    // BullMQ's own publish_event, left open: it holds an id below the ones committed next.
    const held = await pool.connect();
    try {
      await held.query('BEGIN');
      const { rows } = await held.query<{ id: string }>(`SELECT bullmq.publish_event('late', 'added', '{"jobId":"held","name":"x"}'::jsonb)::text AS id`);
      const heldId = BigInt(rows[0]!.id);
      for (let i = 0; i < 3; i++) await q.add('job', {});
      const top = await head();
      await expect.poll(async () => (await summary('late'))?.counters.added, POLL).toBe(3);
      // While it is open the committed watermark never passes it (a resumed leader would read it too).
      await new Promise((r) => setTimeout(r, 600));
      expect(await committedWatermark()).toBeLessThan(heldId);
      expect(top).toBeGreaterThan(heldId);
      await held.query('COMMIT');
    } finally {
      held.release();
    }
    await caughtUp();
    const { rows } = await pool.query<{ n: string }>("SELECT count(*)::text AS n FROM bullmq.event WHERE queue = 'late' AND event = 'added'");
    expect(Number(rows[0]!.n)).toBe(4);
    expect((await summary('late'))?.counters.added).toBe(4);
    await f.close();
  });

  /** A follower in a process of its own (test/fixtures/pg-event-follower.mjs, a 3 s lease) following `queue`; `out` is its output so far. */
  const leaderProcess = (queue: string) => {
    const script = fileURLToPath(new URL('./fixtures/pg-event-follower.mjs', import.meta.url));
    const child = spawn(process.execPath, [script, server.url, SCHEMA, OWN, '3000', queue], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (c: Buffer) => (text += c.toString()));
    child.stderr.on('data', (c: Buffer) => (text += c.toString()));
    return { child, out: () => text };
  };

  it('a leader SIGKILLed mid-workload is replaced after its lease: nothing reset, nothing counted twice', async () => {
    const { child, out } = leaderProcess('killed');
    try {
      await expect.poll(out, POLL).toMatch(/LEADER (\d+)/);
      const childFence = BigInt(/LEADER (\d+)/.exec(out())![1]!);
      const standby = follower();
      standby.setQueues(refs('killed'));
      await standby.start();
      const running = workload('killed', 3);
      // Killed once it committed part of the workload, while jobs are in flight.
      await expect.poll(async () => (await summary('killed'))?.counters.added ?? 0, POLL).toBeGreaterThan(0);
      child.kill('SIGKILL');
      const truth = await running;
      await expect.poll(() => standby.isLeader, POLL).toBe(true);
      expect(standby.fence).toBeGreaterThan(childFence);
      await caughtUp();
      expect(await summary('killed')).toEqual({ ...truth.summary, read: expect.any(Number) });
      await standby.close();
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a leader frozen mid-commit past its lease (SIGSTOP: CPU starvation at its worst) is replaced; resumed, it counts nothing twice', async () => {
    const { child, out } = leaderProcess('paused');
    const blocker = await pool.connect();
    try {
      await expect.poll(out, POLL).toMatch(/LEADER (\d+)/);
      const childFence = BigInt(/LEADER (\d+)/.exec(out())![1]!);
      const standby = follower();
      standby.setQueues(refs('paused'));
      await standby.start();
      const q = bull.queue('paused');
      await q.add('job', {});
      await expect.poll(async () => (await summary('paused'))?.counters.added ?? 0, POLL).toBe(1);
      // The leader's next commit waits inside its transaction, past the fence check that locked the lease row.
      await blocker.query(`BEGIN; LOCK TABLE ${OWN}.event_reader IN EXCLUSIVE MODE`);
      for (let i = 0; i < 3; i++) await q.add('job', {});
      await expect
        .poll(async () => {
          const { rows } = await pool.query(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'queuelens:events' AND wait_event_type = 'Lock' AND query LIKE '%event_reader%'",
          );
          return rows.length;
        }, POLL)
        .toBe(1);
      // Frozen there: its statement completes once the table is free, and its transaction then sits idle on the lease row.
      child.kill('SIGSTOP');
      await blocker.query('COMMIT');
      await expect.poll(() => standby.isLeader, POLL).toBe(true);
      expect(standby.fence).toBeGreaterThan(childFence);
      // Thawed, it goes on from where it stopped: whatever it read under its old fence is refused.
      child.kill('SIGCONT');
      for (let i = 0; i < 2; i++) await q.add('job', {});
      await caughtUp();
      const { rows } = await pool.query<{ n: string }>("SELECT count(*)::text AS n FROM bullmq.job WHERE queue = 'paused'");
      expect(Number(rows[0]!.n)).toBe(6);
      expect((await summary('paused'))?.counters.added).toBe(6);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      blocker.release();
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
  });

  it('resumes from the committed watermark after PostgreSQL restarts', async () => {
    const f = follower();
    f.setQueues(refs('restart'));
    const q = bull.queue('restart');
    for (let i = 0; i < 5; i++) await q.add('job', {});
    await f.start();
    await caughtUp();
    expect((await summary('restart'))?.counters.added).toBe(5);
    const mark = lines.length;
    await server.kill();
    await server.restart();
    for (let i = 0; i < 5; i++) await q.add('job', {});
    const w = bull.worker('restart', async () => 'ok');
    await expect.poll(async () => (await finished('restart')).completed, POLL).toBe(10);
    await w.close();
    await caughtUp();
    const got = await summary('restart');
    expect(got?.counters).toEqual({ added: 10, completed: 10 });
    expect(got?.histograms['processing:completed']).toBe(10);
    // It went on from what it had committed, not from the start of the table.
    const resumed = lines.slice(mark).find((l) => l.includes('event follower resumes'));
    expect(resumed).toBeDefined();
    expect(BigInt((JSON.parse(resumed!) as { watermark: string }).watermark)).toBeGreaterThan(0n);
    await f.close();
  });

  it('counts rows trimmed before they were read as lost, exactly, when only that queue wrote meanwhile', async () => {
    const q = bull.queue('trim', { streams: { events: { maxLen: 20 } } });
    await q.add('job', {});
    const first = follower();
    first.setQueues(refs('trim'));
    await first.start();
    await caughtUp();
    await first.close();
    const from = await committedWatermark();
    // No leader while 300 events are written: BullMQ trims all but about the last 20 of them.
    for (let i = 0; i < 150; i++) await q.add('job', {});
    const retained = await pool.query<{ event: string; n: string }>(
      "SELECT event, count(*)::text AS n FROM bullmq.event WHERE queue = 'trim' AND id > $1 GROUP BY event",
      [from.toString()],
    );
    const kept = Object.fromEntries(retained.rows.map((r) => [r.event, Number(r.n)]));
    const keptRows = (kept.added ?? 0) + (kept.waiting ?? 0);
    expect(keptRows).toBeLessThan(300);
    const second = follower();
    second.setQueues(refs('trim'));
    await second.start();
    await caughtUp();
    const got = await summary('trim');
    expect(got?.lost).toBe(300 - keptRows);
    expect(got?.counters.added).toBe(1 + (kept.added ?? 0));
    expect(got?.read).toBe(2 + keptRows);
    await second.close();
  });
  it("needs only the grants docs/postgres.md lists: read on BullMQ's schema and a schema of its own", async () => {
    await pool.query(`
      CREATE ROLE ql_events LOGIN PASSWORD 'ev-secret';
      GRANT USAGE ON SCHEMA bullmq TO ql_events;
      GRANT SELECT ON bullmq.job, bullmq.meta, bullmq.event, bullmq.rate_limit, bullmq.job_dependency TO ql_events;
      GRANT SELECT ON SEQUENCE bullmq.event_seq TO ql_events;
      REVOKE CREATE ON SCHEMA public FROM PUBLIC;
      CREATE SCHEMA ql_granted AUTHORIZATION ql_events;`);
    const ro = new pg.Pool({ connectionString: server.urlFor({ user: 'ql_events', password: 'ev-secret' }), max: 3 });
    ro.on('error', () => undefined);
    pools.push(ro);
    // No CREATE on the database: it could not create a schema, and needs not (the schema exists).
    await expect(ro.query('CREATE SCHEMA ql_other')).rejects.toThrow(/permission denied/);
    const q = bull.queue('granted');
    await q.add('job', {});
    const f = follower({ pool: ro, ownSchema: 'ql_granted' });
    f.setQueues(refs('granted'));
    await f.start();
    await expect.poll(() => f.isLeader, POLL).toBe(true);
    const top = await head();
    await expect
      .poll(
        async () =>
          BigInt((await pool.query<{ w: string }>("SELECT watermark::text AS w FROM ql_granted.event_reader WHERE source = 'bullmq'")).rows[0]?.w ?? -1),
        POLL,
      )
      .toBeGreaterThanOrEqual(top);
    const got = summarize(await readPostgresEventAccounting(ro, { schema: SCHEMA, ownSchema: 'ql_granted' }), 'granted');
    expect(got?.counters).toEqual({ added: 1 });
    await expect(ro.query('DELETE FROM bullmq.event')).rejects.toThrow(/permission denied/);
    await f.close();
  });
});
