// Benchmark of issue 18 on BullMQ's PostgreSQL backend, in one run on a private PostgreSQL (the tests' helper):
//  1. Collection at 100 and 1,000 queues with 100,000 and then 1,000,000 retained finished jobs: queuelens's
//     PostgresSnapshotCollector against BullMQ's own getJobCounts() of every queue, one after another (as exporters do),
//     on the same database. Wall time, and database time from pg_stat_statements (each side connects as its own role,
//     so its statements are summed apart from the workers').
//  1b. At rest (nothing moving), per 15 s: the sidecar as deployed (createSidecar, event follower on, defaults) with
//     collection on the interval over every queue (--collect-sweep 0, as before change-driven collection) and driven by
//     change (the default sweeps), against an exporter calling getJobCounts() of every queue once per 15 s scrape.
//  2. Event reading: the rate BullMQ-on-PostgreSQL workers produce events at, flat out (add + complete), with the
//     reader following them under the backend's default retention (lost = 0?), and the rate the reader sustains on a
//     backlog.
// Writes its section of docs/benchmarks.md.
import { execFileSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { Queue, Worker, createPostgresBackend } from 'bullmq';
import pg from 'pg';
import { createBackend } from '../src/backends/create-backend.js';
import { resolveSidecarConfig } from '../src/config/sidecar-config.js';
import { createLogger } from '../src/log/logger.js';
import { PostgresEventReader } from '../src/postgres/event-reader.js';
import { createSidecar } from '../src/sidecar/create-sidecar.js';
import { PostgresSnapshotCollector } from '../src/postgres/snapshot.js';
import { postgresBinDir, startTestPostgres, type TestPostgres } from '../test/helpers/postgres-server.js';
import { loadAverage, median, table, writeSection } from './lib/report.js';

const SECTION = '## PostgreSQL backend: collection and event reading (issue 18)';
const LOAD_AT_START = loadAverage();
/** PG_BENCH_QUICK=1: a small run to check the bench itself (its numbers mean nothing; it writes no section). */
const QUICK = process.env.PG_BENCH_QUICK === '1';
const list = (v: string | undefined) => v?.split(',').map(Number);
const QUEUE_COUNTS = list(process.env.PG_BENCH_QUEUES) ?? (QUICK ? [10, 50] : [100, 1_000]);
const RETAINED = list(process.env.PG_BENCH_RETAINED) ?? (QUICK ? [1_000, 10_000] : [100_000, 1_000_000]);
/** PG_BENCH_EXPLAIN=<file>: auto_explain every statement over 20 ms (ANALYZE, BUFFERS) and copy the server log there. */
const EXPLAIN = process.env.PG_BENCH_EXPLAIN;
/** Of the retained finished jobs, every 10th failed (as the earlier measurement in docs/postgres.md). */
const FAILED_EVERY = 10;
const WARMUP = 3;
const ROUNDS = Number(process.env.PG_BENCH_ROUNDS ?? 7);
const WORKER_SECONDS = QUICK ? 3 : 20;
const TARGETS = { speedup: 4, flat: 1.5, readerRatio: 5 };
/** Live jobs per queue, added through BullMQ: 2 waiting, 1 prioritized, 1 delayed (due in an hour). */
const LIVE = { waiting: 2, prioritized: 1, delayed: 1 };
/** Queues (per database) with a worker holding one job active. */
const HELD = 5;
/** At rest: each side is measured over this window (s) after a settling time, and reported per 15 s. */
const AT_REST_S = Number(process.env.PG_BENCH_AT_REST_S ?? (QUICK ? 15 : 60));
const AT_REST_SETTLE_S = QUICK ? 8 : 15;

const queueName = (i: number) => `q${String(i).padStart(4, '0')}`;
/**
 * One database per queue count, each with BullMQ's default schema: BullMQ takes a shared pg.Pool (one pool for the
 * 1,000 baseline Queue objects, as an exporter would share one connection) only with its default schema.
 */
const dbOf = (n: number) => `bench_q${n}`;
const SCHEMA = 'bullmq';
const fmt = (x: number, digits = 1) => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Conn = { connectionString: string; schema?: string; max?: number; migrate?: boolean };

/** A pool on database `db` (search_path BullMQ's schema) that logs in as `role` (pg_stat_statements sums per role). */
function poolFor(server: TestPostgres, db: string, role = 'postgres', max = 2): pg.Pool {
  const p = new pg.Pool({ connectionString: server.urlFor({ user: role, database: db }), max, options: `-c search_path=${SCHEMA}` });
  p.on('error', () => undefined);
  return p;
}

const connFor = (server: TestPostgres, db: string, max = 2): Conn => ({ connectionString: server.urlFor({ database: db }), max });

async function migrate(server: TestPostgres, db: string): Promise<void> {
  await server.pool(1).query(`CREATE DATABASE ${db}`);
  const q = new Queue('__migrate__', { connection: { ...connFor(server, db), migrate: true } }, createPostgresBackend);
  await q.waitUntilReady();
  await q.obliterate({ force: true });
  await q.close();
}

interface Scenario {
  n: number;
  db: string;
  /** Superuser pool on the scenario's database. */
  admin: pg.Pool;
  queues: Queue[];
  workers: Worker[];
  release: Array<() => void>;
  retained: number;
  /** Per queue: completed, failed seeded so far. */
  completedPerQueue: number;
  failedPerQueue: number;
}

/**
 * One completed and one failed job of a template queue, produced by a real BullMQ worker: the retained rows are
 * clones of these (every column as BullMQ wrote it; queue, id from the queue's own id sequence (next_job_id), seq,
 * and the times shifted back).
 */
async function makeTemplate(server: TestPostgres, db: string, admin: pg.Pool): Promise<void> {
  const connection = connFor(server, db);
  const q = new Queue('__tpl__', { connection }, createPostgresBackend);
  const w = new Worker(
    '__tpl__',
    async (job) => {
      if (job.name === 'fail') throw new Error('boom');
      return { ok: true };
    },
    { connection },
    createPostgresBackend,
  );
  await q.add('send', { to: 'user', n: 1 });
  await q.add('fail', { to: 'user', n: 2 });
  for (;;) {
    const c = await q.getJobCounts('completed', 'failed');
    if (c.completed === 1 && c.failed === 1) break;
    await sleep(50);
  }
  await w.close();
  await admin.query(`CREATE TABLE public.tpl AS SELECT * FROM ${SCHEMA}.job WHERE queue = '__tpl__'`);
  await q.obliterate({ force: true });
  await q.close();
}

/** Inserts `perQueue` retained jobs into every queue: clones of the template rows, 1 in FAILED_EVERY failed. */
async function seedRetained(s: Scenario, perQueue: number): Promise<number> {
  const t0 = performance.now();
  const { rows: cols } = await s.admin.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'job' ORDER BY ordinal_position`,
    [SCHEMA],
  );
  const shift = new Set(['added_at_ms', 'processed_at_ms', 'finished_at_ms']);
  const expr = (c: string): string => {
    if (c === 'queue') return 'q.name';
    if (c === 'id') return 'next_job_id(q.name)';
    if (c === 'seq') return `nextval('job_seq')`;
    if (shift.has(c)) return `t.${c} - (g * 7)::bigint`;
    return `t.${c}`;
  };
  const names = s.queues.map((q) => q.name);
  const client = await s.admin.connect();
  try {
    // One statement per state, queues interleaved (as completions of many queues interleave in the heap).
    for (const state of ['completed', 'failed'] as const) {
      const count = state === 'failed' ? Math.floor(perQueue / FAILED_EVERY) : perQueue - Math.floor(perQueue / FAILED_EVERY);
      await client.query(
        `INSERT INTO job (${cols.map((c) => c.column_name).join(', ')})
         SELECT ${cols.map((c) => expr(c.column_name)).join(', ')}
           FROM generate_series(1, $2::int) AS g, unnest($1::text[]) AS q(name), public.tpl t
          WHERE t.state = '${state}'`,
        [names, count],
      );
      if (state === 'failed') s.failedPerQueue += count;
      else s.completedPerQueue += count;
    }
    await client.query(`VACUUM ANALYZE ${SCHEMA}.job`);
  } finally {
    client.release();
  }
  s.retained += perQueue * s.queues.length;
  return (performance.now() - t0) / 1000;
}

async function setupScenario(server: TestPostgres, n: number): Promise<Scenario> {
  const db = dbOf(n);
  await migrate(server, db);
  const admin = poolFor(server, db);
  await makeTemplate(server, db, admin);
  // The baseline's Queue objects share one pool, as a tiny exporter would; they log in as `bl_bench`.
  const shared = poolFor(server, db, 'bl_bench', 4);
  const queues = Array.from({ length: n }, (_, i) => {
    const q = new Queue(queueName(i), { connection: shared as never }, createPostgresBackend);
    q.on('error', () => undefined);
    return q as unknown as Queue;
  });
  await Promise.all(queues.map((q) => q.waitUntilReady()));
  // Live jobs through BullMQ itself.
  for (const q of queues) {
    for (let i = 0; i < LIVE.waiting; i++) await q.add('live', { i });
    for (let i = 0; i < LIVE.prioritized; i++) await q.add('prio', { i }, { priority: 5 });
    for (let i = 0; i < LIVE.delayed; i++) await q.add('later', { i }, { delay: 3_600_000 });
  }
  // A few queues with a worker holding one job: active jobs and workers to count.
  const workers: Worker[] = [];
  const release: Array<() => void> = [];
  for (let i = 0; i < HELD; i++) {
    const q = queues[i]!;
    await q.add('hold', {});
    const held = new Promise<void>((r) => release.push(r));
    let took = false;
    const w = new Worker(
      q.name,
      async () => {
        // The first job it fetches (the first `live` one: priority 0, FIFO) is held; concurrency 1, so no other runs.
        if (!took) {
          took = true;
          await held;
        }
        return 1;
      },
      { connection: connFor(server, db), concurrency: 1, lockDuration: 3_600_000, stalledInterval: 3_600_000 },
      createPostgresBackend,
    );
    w.on('error', () => undefined);
    workers.push(w as unknown as Worker);
  }
  // The held workers take their first job in queue order: wait until each holds one.
  for (;;) {
    const { rows } = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${SCHEMA}.job WHERE state = 'active'`);
    if (Number(rows[0]!.n) === HELD) break;
    await sleep(50);
  }
  return { n, db, admin, queues, workers, release, retained: 0, completedPerQueue: 0, failedPerQueue: 0 };
}

/** Every queue as queuelens reads it against what was seeded and what BullMQ itself counts. */
async function verify(s: Scenario, collector: PostgresSnapshotCollector): Promise<void> {
  const snap = await collector.collect();
  if (!snap.ok) throw new Error(`collection failed: ${snap.error}`);
  const byName = new Map(snap.queues.map((q) => [q.ref.name, q]));
  if (snap.queues.length !== s.n) throw new Error(`expected ${s.n} queues, collected ${snap.queues.length}`);
  for (const [i, q] of s.queues.entries()) {
    const mine = byName.get(q.name)!;
    const truth = await q.getJobCounts();
    // The held job was the first one its worker fetched, a waiting one (priority 0 first, FIFO): one waiting fewer.
    const held = i < HELD ? 1 : 0;
    const seeded = {
      waiting: LIVE.waiting,
      prioritized: LIVE.prioritized,
      delayed: LIVE.delayed,
      active: held,
      waiting_children: 0,
      completed: s.completedPerQueue,
      failed: s.failedPerQueue,
    };
    const theirs = {
      waiting: truth.waiting,
      prioritized: truth.prioritized,
      delayed: truth.delayed,
      active: truth.active,
      waiting_children: truth['waiting-children'],
      completed: truth.completed,
      failed: truth.failed,
    };
    const a = JSON.stringify(mine.jobs);
    if (a !== JSON.stringify(seeded) || a !== JSON.stringify(theirs))
      throw new Error(`${s.db}/${q.name}: queuelens ${a}, seeded ${JSON.stringify(seeded)}, getJobCounts ${JSON.stringify(theirs)}`);
    if (mine.workers !== (i < HELD ? 1 : 0)) throw new Error(`${q.name}: ${mine.workers} workers`);
  }
}

/** Sum of pg_stat_statements execution time (ms) and calls of one role since the last reset. */
async function dbTime(admin: pg.Pool, role: string): Promise<{ ms: number; calls: number; buffers: number }> {
  const { rows } = await admin.query<{ ms: number | null; calls: string | null; buffers: string | null }>(
    `SELECT sum(s.total_exec_time) AS ms, sum(s.calls) AS calls, sum(s.shared_blks_hit + s.shared_blks_read) AS buffers
       FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = $1`,
    [role],
  );
  return { ms: Number(rows[0]!.ms ?? 0), calls: Number(rows[0]!.calls ?? 0), buffers: Number(rows[0]!.buffers ?? 0) };
}

interface Sample {
  wallMs: number;
  dbMs: number;
  calls: number;
  /** Shared buffers the statements touched (hit + read): the work done, which CPU contention does not inflate. */
  buffers: number;
}

async function timed(admin: pg.Pool, role: string, run: () => Promise<unknown>): Promise<Sample> {
  await admin.query('SELECT pg_stat_statements_reset()');
  const t0 = performance.now();
  await run();
  const wallMs = performance.now() - t0;
  const db = await dbTime(admin, role);
  return { wallMs, dbMs: db.ms, calls: db.calls, buffers: db.buffers };
}

interface CollectionRow {
  n: number;
  retained: number;
  seedS: number;
  steady: Sample[];
  recount: Sample[];
  baseline: Sample[];
  recountedSteady: number;
}

const med = (xs: Sample[], k: keyof Sample) => median(xs.map((x) => x[k]));

async function measureCollection(admin: pg.Pool, server: TestPostgres, s: Scenario, seedS: number): Promise<CollectionRow> {
  const ql = poolFor(server, s.db, 'ql_bench', 2);
  // As the sidecar runs it: one collector kept across collections (steady state), and one that recounts every queue's
  // finished jobs at every collection (its first collection, and its periodic full recount).
  const steady = new PostgresSnapshotCollector(ql, { schema: SCHEMA });
  const recount = new PostgresSnapshotCollector(ql, { schema: SCHEMA, finishedRecountMs: 0 });
  await verify(s, steady);
  await verify(s, recount);
  for (let i = 0; i < WARMUP; i++) {
    await steady.collect();
    await recount.collect();
    for (const q of s.queues) await q.getJobCounts();
  }
  const row: CollectionRow = { n: s.n, retained: s.retained, seedS, steady: [], recount: [], baseline: [], recountedSteady: 0 };
  for (let r = 0; r < ROUNDS; r++) {
    row.steady.push(await timed(admin, 'ql_bench', () => steady.collect()));
    row.recountedSteady = Math.max(row.recountedSteady, steady.lastRecounted);
    row.recount.push(await timed(admin, 'ql_bench', () => recount.collect()));
    row.baseline.push(
      await timed(admin, 'bl_bench', async () => {
        for (const q of s.queues) await q.getJobCounts();
      }),
    );
  }
  await verify(s, steady);
  await ql.end();
  return row;
}

interface AtRestRow {
  n: number;
  retained: number;
  /** Per 15 s. */
  before: Sample;
  after: Sample;
  baseline: Sample;
  /** Collections the after side ran in its window, and the queues it read in them (change plan). */
  afterCollections: number;
}

const per15 = (x: Sample, seconds: number): Sample => {
  const k = 15 / seconds;
  return { wallMs: x.wallMs * k, dbMs: x.dbMs * k, calls: x.calls * k, buffers: x.buffers * k };
};

/**
 * The sidecar at rest on scenario `s`, as deployed (event follower on, 5 s interval, discovery), logging in as
 * ql_bench: collection over every queue at every interval (`sweep` 0) or driven by change (the defaults). Settles
 * (the first collection reads and recounts every queue; the follower takes the lease and catches up), then its
 * database work over AT_REST_S, per 15 s.
 */
async function sidecarAtRest(admin: pg.Pool, server: TestPostgres, s: Scenario, sweep: string | undefined): Promise<{ sample: Sample; collections: number }> {
  const config = resolveSidecarConfig({
    backend: 'postgres',
    databaseUrl: server.urlFor({ user: 'ql_bench', database: s.db }),
    port: '9487',
    host: '127.0.0.1',
    logLevel: 'silent',
    maxQueues: '5000',
    ...(sweep === undefined ? {} : { collectSweep: sweep }),
  });
  const log = createLogger({ level: config.logLevel });
  const sidecar = await createSidecar(config, log, await createBackend(config, log));
  await sidecar.start();
  await sleep(AT_REST_SETTLE_S * 1000);
  const seq = sidecar.snapshot()?.seq ?? 0;
  const sample = await timed(admin, 'ql_bench', () => sleep(AT_REST_S * 1000));
  const collections = (sidecar.snapshot()?.seq ?? 0) - seq;
  await sidecar.close();
  return { sample: per15(sample, AT_REST_S), collections };
}

/** `admin`: a pool on the database pg_stat_statements was created in. */
async function measureAtRest(admin: pg.Pool, server: TestPostgres, s: Scenario): Promise<AtRestRow> {
  const before = await sidecarAtRest(admin, server, s, '0');
  const after = await sidecarAtRest(admin, server, s, undefined);
  // An exporter scraped every 15 s: getJobCounts() of every queue once, one after another (median of 3).
  const baseline: Sample[] = [];
  for (let r = 0; r < 3; r++)
    baseline.push(
      await timed(admin, 'bl_bench', async () => {
        for (const q of s.queues) await q.getJobCounts();
      }),
    );
  const mid = (k: keyof Sample) => median(baseline.map((b) => b[k]));
  return {
    n: s.n,
    retained: s.retained,
    before: before.sample,
    after: after.sample,
    baseline: { wallMs: mid('wallMs'), dbMs: mid('dbMs'), calls: mid('calls'), buffers: mid('buffers') },
    afterCollections: after.collections,
  };
}

interface EventResult {
  producedPerS: number;
  jobsPerS: number;
  jobs: number;
  events: number;
  delivered: number;
  completedDelivered: number;
  addedDelivered: number;
  possibleLoss: number;
  duplicates: number;
  readerPolls: number;
  backlogRows: number;
  backlogS: number;
  readerPerS: number;
  maxWindow: number;
}

/** BullMQ workers flat out on one queue while the reader follows under default retention; then a backlog read. */
async function measureEvents(server: TestPostgres): Promise<EventResult> {
  const db = 'bench_ev';
  await migrate(server, db);
  const connection = connFor(server, db, 8);
  const queue = new Queue('flat', { connection }, createPostgresBackend);
  await queue.waitUntilReady();
  const readerPool = poolFor(server, db, 'ql_bench', 2);
  const reader = new PostgresEventReader(readerPool, { schema: SCHEMA });
  const delivered = new Set<bigint>();
  const res = { delivered: 0, completed: 0, added: 0, loss: 0, dups: 0, polls: 0, maxWindow: 0 };
  const pollOnce = async () => {
    const r = await reader.poll(['flat']);
    res.polls++;
    res.maxWindow = Math.max(res.maxWindow, r.window);
    res.loss += r.possibleLoss.length;
    for (const e of r.events) {
      if (delivered.has(e.id)) res.dups++;
      delivered.add(e.id);
      res.delivered++;
      if (e.event === 'completed') res.completed++;
      if (e.event === 'added') res.added++;
    }
  };
  // The reader as the sidecar would run it: woken by LISTEN, and on a slow timer (a NOTIFY may be coalesced away).
  let wake: (() => void) | undefined;
  await reader.listen({ connectionString: server.urlFor({ user: 'ql_bench', database: db }) }, () => wake?.());
  let readerOn = true;
  const readerLoop = (async () => {
    while (readerOn) {
      await pollOnce();
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 200);
      });
    }
  })();

  let completed = 0;
  let added = 0;
  const workers = [0, 1].map(() => {
    const w = new Worker('flat', async () => 1, { connection, concurrency: 50 }, createPostgresBackend);
    w.on('completed', () => completed++);
    w.on('error', () => undefined);
    return w;
  });
  const admin = poolFor(server, db);
  const head = async () =>
    BigInt((await admin.query<{ v: string }>(`SELECT (CASE WHEN is_called THEN last_value ELSE 0 END)::text AS v FROM ${SCHEMA}.event_seq`)).rows[0]!.v);
  let producing = true;
  const producer = (async () => {
    while (producing) {
      if (added - completed > 2_000) {
        await sleep(5);
        continue;
      }
      await queue.addBulk(Array.from({ length: 50 }, (_, i) => ({ name: 'noop', data: { i } })));
      added += 50;
    }
  })();
  await sleep(3_000);
  const h0 = await head();
  const c0 = completed;
  const t0 = performance.now();
  await sleep(WORKER_SECONDS * 1000);
  const h1 = await head();
  const c1 = completed;
  const seconds = (performance.now() - t0) / 1000;
  producing = false;
  await producer;
  while (completed < added) await sleep(50);
  await Promise.all(workers.map((w) => w.close()));
  // Let the reader catch up with everything committed, then stop it.
  const end = await head();
  for (;;) {
    await pollOnce();
    if (reader.state().watermark >= end) break;
    await sleep(100);
  }
  readerOn = false;
  wake?.();
  await readerLoop;
  await reader.close();
  const events = Number((await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${SCHEMA}.event`)).rows[0]!.n);

  // Backlog: 160,000 event rows of 16 queues, interleaved in id order as concurrent queues write them, copied from
  // what the workers just wrote; the queues' maxLenEvents is raised so that nothing of it counts as trimmable (under
  // the default the table would hold about 10,000 of them). A fresh reader reads it as fast as it polls.
  const backlogQueues = Array.from({ length: 16 }, (_, i) => `backlog${i}`);
  const { rows: sample } = await admin.query<{ event: string; data: unknown }>(
    `SELECT event, data FROM ${SCHEMA}.event WHERE queue = 'flat' ORDER BY id DESC LIMIT 1000`,
  );
  for (const q of backlogQueues)
    await admin.query(`INSERT INTO ${SCHEMA}.meta (queue, field, value) VALUES ($1, 'opts.maxLenEvents', '1000000') ON CONFLICT DO NOTHING`, [q]);
  await admin.query(
    `INSERT INTO ${SCHEMA}.event (queue, event, data, created_at_ms)
     SELECT 'backlog' || (g % 16), s.event, s.data, (extract(epoch FROM clock_timestamp()) * 1000)::bigint
       FROM generate_series(0, 159999) AS g
       JOIN (SELECT (row_number() OVER ()) - 1 AS k, x.event, x.data FROM jsonb_to_recordset($1::jsonb) AS x(event text, data jsonb)) s
         ON s.k = g % $2
      ORDER BY g`,
    [JSON.stringify(sample), sample.length],
  );
  const backlogReader = new PostgresEventReader(readerPool, { schema: SCHEMA });
  const backlogRows = 160_000;
  let read = 0;
  const b0 = performance.now();
  for (let idle = 0; read < backlogRows && idle < 50;) {
    const r = await backlogReader.poll(backlogQueues);
    read += r.events.length;
    idle = r.events.length === 0 ? idle + 1 : 0;
  }
  const backlogS = (performance.now() - b0) / 1000;
  await queue.close();
  await readerPool.end();
  if (read !== backlogRows) throw new Error(`backlog: read ${read} of ${backlogRows}`);
  const jobs = added;
  return {
    producedPerS: Number(h1 - h0) / seconds,
    jobsPerS: (c1 - c0) / seconds,
    jobs,
    events,
    delivered: res.delivered,
    completedDelivered: res.completed,
    addedDelivered: res.added,
    possibleLoss: res.loss,
    duplicates: res.dups,
    readerPolls: res.polls,
    backlogRows,
    backlogS,
    readerPerS: backlogRows / backlogS,
    maxWindow: res.maxWindow,
  };
}

function pgVersion(): string {
  try {
    return execFileSync(`${postgresBinDir()}/postgres`, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  const server = await startTestPostgres({
    settings: {
      shared_preload_libraries: EXPLAIN ? 'pg_stat_statements,auto_explain' : 'pg_stat_statements',
      max_connections: '200',
      shared_buffers: '512MB',
      'pg_stat_statements.track': 'top',
      ...(EXPLAIN
        ? { 'auto_explain.log_min_duration': process.env.PG_BENCH_EXPLAIN_MS ?? '20ms', 'auto_explain.log_analyze': 'on', 'auto_explain.log_buffers': 'on' }
        : {}),
    },
  });
  const admin = server.pool(2);
  const scenarios: Scenario[] = [];
  try {
    await admin.query('CREATE EXTENSION pg_stat_statements');
    await admin.query('CREATE ROLE ql_bench LOGIN SUPERUSER; CREATE ROLE bl_bench LOGIN SUPERUSER');
    for (const n of QUEUE_COUNTS) scenarios.push(await setupScenario(server, n));
    const rows: CollectionRow[] = [];
    for (const [step, retained] of RETAINED.entries()) {
      for (const s of scenarios) {
        const perQueue = (retained - s.retained) / s.n;
        const seedS = await seedRetained(s, perQueue);
        console.error(`seeded ${s.db} to ${retained} retained in ${seedS.toFixed(1)} s (step ${step})`);
        const row = await measureCollection(admin, server, s, seedS);
        console.error(
          `${s.n} queues, ${retained} retained: steady ${fmt(med(row.steady, 'wallMs'))} ms, recount ${fmt(med(row.recount, 'wallMs'))} ms, getJobCounts ${fmt(med(row.baseline, 'wallMs'))} ms`,
        );
        rows.push(row);
      }
    }
    const atRest: AtRestRow[] = [];
    for (const s of scenarios) {
      const row = await measureAtRest(admin, server, s);
      console.error(
        `at rest, ${s.n} queues: before ${fmt(row.before.dbMs)} ms DB / ${fmt(row.before.buffers, 0)} buffers, after ${fmt(row.after.dbMs)} / ${fmt(row.after.buffers, 0)}, getJobCounts ${fmt(row.baseline.dbMs)} / ${fmt(row.baseline.buffers, 0)} per 15 s`,
      );
      atRest.push(row);
    }
    for (const s of scenarios) {
      for (const r of s.release) r();
      await Promise.all(s.workers.map((w) => w.close(true)));
      await Promise.all(s.queues.map((q) => q.close()));
      await s.admin.end();
    }
    const ev = await measureEvents(server);
    console.error(JSON.stringify(ev));
    const body = report(rows, atRest, ev, started);
    if (QUICK || process.env.PG_BENCH_QUEUES || process.env.PG_BENCH_RETAINED) console.log(body);
    else writeSection(new URL('../../docs/benchmarks.md', import.meta.url), SECTION, body);
  } catch (err) {
    console.error('bench failed:', err);
    process.exitCode = 1;
  } finally {
    // BullMQ's own clients report the server going away as errors: the run is over by then.
    process.on('uncaughtException', () => undefined);
    if (EXPLAIN) copyFileSync(`${server.dir}/server.log`, EXPLAIN);
    await server.stop();
  }
}

function report(rows: CollectionRow[], atRest: AtRestRow[], ev: EventResult, started: number): string {
  const at = (n: number, retained: number) => rows.find((r) => r.n === n && r.retained === retained)!;
  const big = Math.max(...QUEUE_COUNTS);
  const [small, large] = RETAINED as [number, number];
  const speedup = (r: CollectionRow, k: 'steady' | 'recount') => med(r.baseline, 'wallMs') / med(r[k], 'wallMs');
  const flat = (k: 'steady' | 'recount', n: number) => med(at(n, large)[k], 'wallMs') / med(at(n, small)[k], 'wallMs');
  const flatDb = (k: 'steady' | 'recount', n: number) => med(at(n, large)[k], 'dbMs') / med(at(n, small)[k], 'dbMs');
  const flatBuf = (k: 'steady' | 'recount', n: number) => med(at(n, large)[k], 'buffers') / med(at(n, small)[k], 'buffers');
  const yes = (ok: boolean) => (ok ? 'met' : '**missed**');
  const collTable = table(
    [
      'queues',
      'retained',
      'queuelens steady wall (ms)',
      'steady DB (ms)',
      'steady buffers',
      'queues recounted (steady, max)',
      'full recount wall (ms)',
      'full recount DB (ms)',
      'full recount buffers',
      'getJobCounts wall (ms)',
      'getJobCounts DB (ms)',
      'getJobCounts buffers',
      'speed-up steady',
      'speed-up full recount',
      'statements (queuelens / getJobCounts)',
    ],
    rows.map((r) => [
      r.n.toLocaleString('en-US'),
      r.retained.toLocaleString('en-US'),
      fmt(med(r.steady, 'wallMs')),
      fmt(med(r.steady, 'dbMs')),
      med(r.steady, 'buffers').toLocaleString('en-US'),
      r.recountedSteady,
      fmt(med(r.recount, 'wallMs')),
      fmt(med(r.recount, 'dbMs')),
      med(r.recount, 'buffers').toLocaleString('en-US'),
      fmt(med(r.baseline, 'wallMs')),
      fmt(med(r.baseline, 'dbMs')),
      med(r.baseline, 'buffers').toLocaleString('en-US'),
      `${fmt(speedup(r, 'steady'))}×`,
      `${fmt(speedup(r, 'recount'))}×`,
      `${med(r.steady, 'calls')} / ${med(r.baseline, 'calls')}`,
    ]),
  );
  const restAt = (n: number) => atRest.find((r) => r.n === n)!;
  const restTable = table(
    [
      'queues',
      'retained',
      'before: interval over every queue, DB (ms / 15 s)',
      'buffers / 15 s',
      'statements / 15 s',
      'after: driven by change, DB (ms / 15 s)',
      'buffers / 15 s',
      'statements / 15 s',
      'getJobCounts every 15 s, DB (ms)',
      'buffers',
      'statements',
      'after / before (buffers)',
      'after / getJobCounts (buffers)',
    ],
    atRest.map((r) => [
      r.n.toLocaleString('en-US'),
      r.retained.toLocaleString('en-US'),
      fmt(r.before.dbMs),
      fmt(r.before.buffers, 0),
      fmt(r.before.calls, 0),
      fmt(r.after.dbMs),
      fmt(r.after.buffers, 0),
      fmt(r.after.calls, 0),
      fmt(r.baseline.dbMs),
      fmt(r.baseline.buffers, 0),
      fmt(r.baseline.calls, 0),
      `${fmt(r.after.buffers / r.before.buffers, 2)}×`,
      `${fmt(r.after.buffers / r.baseline.buffers, 2)}×`,
    ]),
  );
  const seedLine = rows.map((r) => `${r.n.toLocaleString('en-US')} queues to ${r.retained.toLocaleString('en-US')} in ${fmt(r.seedS)} s`).join(', ');
  const sAt = at(big, large);
  return `
Run with \`npm run bench:postgres\` (bench/postgres.ts). One run on this machine:

- date: ${new Date(started).toISOString().replace(/\.\d+Z$/, 'Z')}, took ${fmt((Date.now() - started) / 60_000)} min
- machine: ${cpus().length} CPUs (nproc), ${cpus()[0]?.model.trim() ?? 'unknown CPU'}; load average at start ${LOAD_AT_START}, at the end ${loadAverage()}
- node ${process.version}, ${pgVersion()} (private server from test/helpers/postgres-server.ts: loopback, fsync off, shared_buffers 512MB, pg_stat_statements preloaded), bullmq 6.7.0

**Collection.** One database per queue count, BullMQ's default schema migrated by BullMQ, ${QUEUE_COUNTS.map((n) => n.toLocaleString('en-US')).join(' and ')} queues. Live jobs added through BullMQ: per queue ${LIVE.waiting} waiting, ${LIVE.prioritized} prioritized, ${LIVE.delayed} delayed; on ${HELD} queues a real worker holds one job active. Retained finished jobs (1 in ${FAILED_EVERY} failed, the rest completed) are inserted with SQL as clones of a job a real BullMQ worker completed and one it failed in the same database (every column as BullMQ wrote it; ids from the queue's own id sequence via BullMQ's \`next_job_id\`, \`seq\` from \`job_seq\`, times shifted), queues interleaved in the heap, then \`VACUUM ANALYZE\` (what autovacuum does; index-only scans need the visibility map). First ${small.toLocaleString('en-US')} retained in total, measured, then grown to ${large.toLocaleString('en-US')} in the same databases and measured again (${seedLine}). Before and after timing, every queue's collected counts were checked against the seeded numbers and against BullMQ's \`getJobCounts()\` (a mismatch stops the run).

- **queuelens steady**: \`PostgresSnapshotCollector.collect()\` as the sidecar keeps it (discovery + one statement per 100 queues in one snapshot); the completed/failed counts of a queue are recounted only when its events say they may have changed (none moved here: the retained jobs were inserted before, and the held workers are idle), or every \`finishedRecountMs\` (60 s): the rounds of a size last longer than that, so one steady round can include the periodic recount of every queue (the max column shows it; the medians are not moved by one round).
- **queuelens full recount**: the same with \`finishedRecountMs: 0\`: every queue's finished jobs counted at every collection (an index-only scan of \`job_finished_idx\`). This is the first collection after a start, and one collection per minute afterwards.
- **getJobCounts**: BullMQ's \`Queue.getJobCounts()\` of every queue, awaited one after another (as exporters do), \`Queue\` objects built beforehand on one shared pool.
- **DB**: sum of \`total_exec_time\` in \`pg_stat_statements\` (reset before each run) over the statements of the side's own role (each side logs in as its own role; the workers as a third), BEGIN/SET/COMMIT included. Medians of ${ROUNDS} rounds after ${WARMUP} warm-up rounds; a round runs steady, full recount and getJobCounts back to back.

${collTable}

Targets: ≥ ${TARGETS.speedup}× faster than getJobCounts at ${big.toLocaleString('en-US')} queues with ${large.toLocaleString('en-US')} retained, as the sidecar runs it (steady): ${fmt(speedup(sAt, 'steady'), 2)}× (${yes(speedup(sAt, 'steady') >= TARGETS.speedup)}); in the worst case, every queue's finished jobs counted (the first collection, then one per 60 s): ${fmt(speedup(sAt, 'recount'), 2)}× (${yes(speedup(sAt, 'recount') >= TARGETS.speedup)}). Flat as retained grows 10× (${small.toLocaleString('en-US')} → ${large.toLocaleString('en-US')}), judged on the work (shared buffers touched, which CPU contention on this shared machine does not inflate; "flat" = at most ${TARGETS.flat}×): steady ${QUEUE_COUNTS.map((n) => `${fmt(flatBuf('steady', n), 2)}× buffers (${fmt(flatDb('steady', n), 2)}× DB time, ${fmt(flat('steady', n), 2)}× wall) at ${n.toLocaleString('en-US')} queues`).join(', ')} (${yes(QUEUE_COUNTS.every((n) => flatBuf('steady', n) <= TARGETS.flat))}); full recount ${QUEUE_COUNTS.map((n) => `${fmt(flatBuf('recount', n), 2)}× buffers at ${n.toLocaleString('en-US')} queues`).join(', ')} (not flat: BullMQ keeps no counter, docs/postgres.md §2.2).

How to read it: wall and DB times move with what else runs on this shared 2-core machine (see the load average), so flatness is judged on shared buffers, which count the work. A steady collection costs about 30 buffers per queue (a dozen index probes: live states, head job, meta, rate limit, the event check), whatever the queue retains; a full recount adds an index-only scan of every retained finished job (about 1 buffer per 100-300 of them), so with few retained jobs per queue it costs no more than the check. getJobCounts reads every job of the queue through the primary key, heap included.

**At rest** (issue 16 on PostgreSQL): after the collection rows, in the same databases (${large.toLocaleString('en-US')} retained, nothing moving; the ${HELD} held workers idle), the sidecar as deployed (\`createSidecar\`, the event follower on, \`--collect-interval\` 5, discovery every 60 s, logging in as its own role) runs ${AT_REST_SETTLE_S} s to settle (its first collection reads and recounts every queue, the follower takes the lease), then its statements are summed over ${AT_REST_S} s and scaled to 15 s: **before**, collection on the interval over every queue (\`--collect-sweep 0\`: what every release before change-driven collection did, completed/failed recounted every 60 s); **after**, driven by change with the default sweeps (60 s for a queue whose lock can expire, 600 s otherwise; a swept queue's finished jobs are recounted). Both columns run this release's event follower (idle, a wake-up reads only the sequence head; the release before read every queue's rows every second on top of the "before" column) and its 1 s heartbeat commit, and the discovery pass when it falls in the window. **getJobCounts**: an exporter scraped every 15 s, \`getJobCounts()\` of every queue once, one after another (median of 3), in the same run.

${restTable}

At ${big.toLocaleString('en-US')} queues at rest, driven by change: ${fmt(restAt(big).after.buffers / restAt(big).before.buffers, 2)}× the buffers of collecting every queue on the interval, and ${fmt(restAt(big).after.buffers / restAt(big).baseline.buffers, 2)}× those of getJobCounts() every 15 s (DB time ${fmt(restAt(big).after.dbMs / restAt(big).before.dbMs, 2)}× and ${fmt(restAt(big).after.dbMs / restAt(big).baseline.dbMs, 2)}×).

**Event reading.** One queue, 2 BullMQ workers (concurrency 50, noop processor) and a producer adding in bulk (50 per \`addBulk\`, at most 2,000 ahead of the workers) in this process, flat out for ${WORKER_SECONDS} s after 3 s of warm-up; the produced rate is the growth of \`event_seq\` over that window. Meanwhile the reader (\`PostgresEventReader\`, default page 1,000) follows, woken by LISTEN \`bullmq_events\` and a 200 ms timer, as the sidecar would; retention is BullMQ's default (\`maxLenEvents\` 10,000). Then the reader's own speed: a fresh reader reads a backlog of ${ev.backlogRows.toLocaleString('en-US')} event rows of 16 queues, interleaved in id order as concurrent queues write them (rows copied from the workers' events; the queues' \`maxLenEvents\` raised so none of it is trimmable), as fast as it polls.

| BullMQ workers: events/s | jobs/s | jobs | events delivered | completed delivered | added delivered | possible-loss ranges | duplicates | reader polls | largest window | reader backlog rows/s | reader / workers |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
| ${fmt(ev.producedPerS, 0)} | ${fmt(ev.jobsPerS, 0)} | ${ev.jobs.toLocaleString('en-US')} | ${ev.delivered.toLocaleString('en-US')} | ${ev.completedDelivered.toLocaleString('en-US')} | ${ev.addedDelivered.toLocaleString('en-US')} | ${ev.possibleLoss} | ${ev.duplicates} | ${ev.readerPolls} | ${ev.maxWindow} | ${fmt(ev.readerPerS, 0)} | ${fmt(ev.readerPerS / ev.producedPerS)}× |

Targets: reader ≥ ${TARGETS.readerRatio}× the workers' event rate: ${fmt(ev.readerPerS / ev.producedPerS)}× (${yes(ev.readerPerS / ev.producedPerS >= TARGETS.readerRatio)}); 0 lost under the default retention: ${ev.possibleLoss === 0 && ev.completedDelivered === ev.jobs && ev.addedDelivered === ev.jobs && ev.duplicates === 0 ? 'met' : '**missed**'} (every job's \`added\` and \`completed\` delivered exactly once, no possible-loss range reported).
`;
}

await main();
