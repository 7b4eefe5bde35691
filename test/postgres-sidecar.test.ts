// `queuelens sidecar --backend postgres` in-process, against a private PostgreSQL with real BullMQ-on-PostgreSQL
// producers and workers: every gauge through /metrics against ground truth (what was enqueued, BullMQ's own
// getJobCounts(), the jobs' own timestamps), hostile queue names in the labels, discovery's budget and timer, and an
// outage (server killed and restarted) seen as up 0 and /health 503, then recovered with fresh values; the password
// of the connection string never reaches a log line.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresBullFixtures } from './helpers/postgres-bullmq.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres-server.js';
import { parsePromText, seriesKey, seriesOf, type Series } from './helpers/prom-text.js';
import { testPostgresSidecar } from './helpers/sidecar.js';
import { runCli, spawnCli } from './helpers/cli.js';
import { freePort } from './helpers/redis-server.js';
import { waitFor } from './helpers/bullmq.js';

const POLL = { timeout: 60_000, interval: 200 };
const PREFIX = 'bullmq';
const SECRET = 'pg-pa55word-never-logged';

const jobs = (m: Series, queue: string, state: string, prefix = PREFIX) => m.get(seriesKey('bullmq_queue_jobs', { prefix, queue, state }));
const gauge = (m: Series, name: string, queue: string, prefix = PREFIX) => m.get(seriesKey(name, { prefix, queue }));

describe('sidecar --backend postgres', () => {
  let server: TestPostgres;
  let bull: PostgresBullFixtures;
  const release: Array<() => void> = [];
  const sidecars: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    server = await startTestPostgres();
    bull = new PostgresBullFixtures(server);
    await bull.migrate();
    // A role that logs in with a password (scram over TCP, unlike the helper's trusted superuser), with the grants
    // docs/postgres.md lists: read BullMQ's schema, own queuelens's (ql_own: `queuelens` belongs to the superuser's
    // sidecars of the other tests).
    const admin = server.pool(1);
    await admin.query(`
      CREATE ROLE ql_pw LOGIN PASSWORD '${SECRET}';
      GRANT USAGE ON SCHEMA bullmq TO ql_pw;
      GRANT SELECT ON ALL TABLES IN SCHEMA bullmq TO ql_pw;
      GRANT SELECT ON SEQUENCE bullmq.event_seq TO ql_pw;
      CREATE SCHEMA ql_own AUTHORIZATION ql_pw;`);
    const hba = join(server.dir, 'data', 'pg_hba.conf');
    writeFileSync(hba, `host all ql_pw 127.0.0.1/32 scram-sha-256\n${readFileSync(hba, 'utf8')}`);
    await admin.query('SELECT pg_reload_conf()');
    await admin.end();
  });
  afterAll(async () => {
    for (const r of release) r();
    for (const s of sidecars) await s.close().catch(() => undefined);
    await bull?.close();
    await server?.stop();
  });

  const sidecar = async (raw: Record<string, unknown> = {}, logTo?: string[], url = server.url) => {
    const s = await testPostgresSidecar(url, raw, logTo);
    sidecars.push(s);
    return s;
  };

  it('exports every gauge per state as BullMQ and the jobs themselves say, with the schema as the prefix', async () => {
    // Waiting, prioritized, delayed (two not due, one overdue: no worker fetches on this queue), a flow parent.
    const { plain } = await bull.addMixedJobs('mixed');
    // Paused with a backlog; a dead-letter queue beside its source.
    const held = bull.queue('held');
    await held.add('a', {});
    await held.pause();
    await bull.queue('orders').add('o', {});
    const dlq = bull.queue('orders-dlq');
    await dlq.add('dead', {});
    await dlq.add('dead', {});
    // Finished, failed and a running job, with two workers (one named: `work:w:w one` in pg_stat_activity).
    const work = bull.queue('work');
    let hold!: () => void;
    const holding = new Promise<void>((r) => (hold = r));
    release.push(hold);
    const started: Job[] = [];
    const processor = async (job: Job) => {
      if (job.name === 'fail') throw new Error('no');
      if (job.name === 'hold') {
        started.push(job);
        await holding;
      }
      return 1;
    };
    bull.worker('work', processor, { name: 'w one', concurrency: 2 });
    bull.worker('work', processor, { concurrency: 2 });
    for (let i = 0; i < 3; i++) await work.add('ok', {});
    for (let i = 0; i < 2; i++) await work.add('fail', {});
    await work.add('hold', {});
    // A worker that stops renewing its lock leaves its job active; once the lock expires it is orphaned.
    const stuck = bull.queue('stuck');
    const w2 = bull.worker('stuck', () => new Promise(() => undefined), { lockDuration: 1_000, stalledInterval: 3_600_000 });
    await stuck.add('x', {});
    await expect.poll(async () => (await stuck.getJobCounts()).active, POLL).toBe(1);
    await w2.close(true);
    await expect.poll(async () => Object.values(await work.getJobCounts('completed', 'failed')).reduce((a, b) => a + b, 0), POLL).toBe(5);
    await expect.poll(() => started.length, POLL).toBe(1);

    const s = await sidecar();
    // The orphan needs the lock to expire (1 s) and the overdue job its second: collected until both show.
    let m: Series = new Map();
    let before = 0;
    let after = 0;
    await expect
      .poll(async () => {
        before = Date.now();
        await s.refresh();
        after = Date.now();
        m = await s.scrape();
        return [gauge(m, 'bullmq_queue_orphaned_active_jobs', 'stuck'), gauge(m, 'bullmq_queue_delayed_overdue_jobs', 'mixed')];
      }, POLL)
      .toEqual([1, 1]);

    expect(m.get('bullmq_exporter_up')).toBe(1);
    expect(m.get('bullmq_exporter_redis_up')).toBe(1);
    for (const name of ['mixed', 'held', 'orders', 'orders-dlq', 'work', 'stuck']) {
      const states = await bull.countsOf(name);
      for (const [state, n] of Object.entries(states)) expect(jobs(m, name, state), `${name} ${state}`).toBe(n);
    }
    // And what was enqueued, independently of BullMQ's count.
    expect([jobs(m, 'mixed', 'waiting'), jobs(m, 'mixed', 'prioritized'), jobs(m, 'mixed', 'delayed'), jobs(m, 'mixed', 'waiting_children')]).toEqual([
      5, 2, 3, 1,
    ]);
    expect([jobs(m, 'work', 'completed'), jobs(m, 'work', 'failed'), jobs(m, 'work', 'active')]).toEqual([3, 2, 1]);
    expect(gauge(m, 'bullmq_queue_paused', 'held')).toBe(1);
    // Sparse: a queue that is not paused has no paused series (or 0).
    expect(gauge(m, 'bullmq_queue_paused', 'mixed') ?? 0).toBe(0);
    expect(jobs(m, 'held', 'waiting')).toBe(1);
    expect(gauge(m, 'bullmq_queue_workers', 'work')).toBe(2);
    expect(gauge(m, 'bullmq_queue_workers', 'mixed')).toBe(0);
    expect(gauge(m, 'bullmq_queue_workers', 'stuck')).toBe(0);
    expect(gauge(m, 'bullmq_queue_orphaned_active_jobs', 'work')).toBeUndefined();
    expect(jobs(m, 'stuck', 'active')).toBe(1);
    expect(gauge(m, 'bullmq_dlq_jobs', 'orders')).toBe(2);
    expect(gauge(m, 'bullmq_queue_rate_limited', 'mixed')).toBeUndefined();

    // Ages: the head job (plain, priority 0 first) since it was added; the held job since it started.
    const headAt = plain[0]!.timestamp;
    const waitAge = gauge(m, 'bullmq_queue_oldest_waiting_age_seconds', 'mixed')!;
    expect(headAt + waitAge * 1000).toBeGreaterThanOrEqual(before - 1);
    expect(headAt + waitAge * 1000).toBeLessThanOrEqual(after + 1);
    const processedOn = (await work.getJob(started[0]!.id!))!.processedOn!;
    const activeAge = gauge(m, 'bullmq_queue_oldest_active_age_seconds', 'work')!;
    expect(processedOn + activeAge * 1000).toBeGreaterThanOrEqual(before - 1);
    expect(processedOn + activeAge * 1000).toBeLessThanOrEqual(after + 1);

    // Queues per prefix: the schema.
    expect(m.get(seriesKey('bullmq_exporter_queues', { prefix: PREFIX }))).toBe(6);
    // /api/queues and /health read the same collection.
    const api = (await s.app.inject({ url: '/api/queues' })).json() as { queues: Array<{ prefix: string; name: string; jobs: Record<string, number> }> };
    const mixedRow = api.queues.find((r) => r.name === 'mixed');
    expect(mixedRow?.prefix).toBe(PREFIX);
    expect(mixedRow?.jobs).toMatchObject({ waiting: 5, prioritized: 2, delayed: 3, waiting_children: 1 });
    expect((await s.app.inject({ url: '/health' })).statusCode).toBe(200);
  });

  it('counts the finished jobs through the event follower too (events on by default)', async () => {
    const s = await sidecar();
    await s.refresh();
    await s.start();
    await expect
      .poll(async () => {
        await s.refresh();
        return (await s.scrape()).get(seriesKey('bullmq_jobs_completed_total', { prefix: PREFIX, queue: 'work' }));
      }, POLL)
      .toBe(3);
    const m = await s.scrape();
    expect(m.get(seriesKey('bullmq_jobs_failed_total', { prefix: PREFIX, queue: 'work' }))).toBe(2);
    expect(m.get('bullmq_exporter_leader')).toBe(1);
    await s.close();
  });

  it('puts hostile queue names into labels exactly, escaped, and skips a name too long to export', async () => {
    const names = ['quote"d', 'back\\slash', 'new\nline', 'with space', 'ünïcødé-队列-🚀', "it's"];
    for (const [i, name] of names.entries()) {
      const q = bull.queue(name);
      for (let j = 0; j <= i; j++) await q.add('j', { j });
    }
    // BullMQ refuses `:` in a name; a row written by other means is still a queue of the schema.
    const admin = server.pool(1);
    await admin.query(`INSERT INTO bullmq.meta (queue, field, value) VALUES ($1, 'version', 'x'), ($2, 'version', 'x')`, ['co:lon', 'y'.repeat(1100)]);
    const s = await sidecar();
    await s.refresh();
    const m = await s.scrape();
    for (const [i, name] of names.entries()) expect(jobs(m, name, 'waiting'), JSON.stringify(name)).toBe(i + 1);
    expect(jobs(m, 'co:lon', 'waiting')).toBe(0);
    expect(m.get(seriesKey('bullmq_exporter_queues_dropped', { reason: 'name_too_long' }))).toBe(1);
    expect(seriesOf(m, 'bullmq_queue_jobs').some((k) => k.includes('yyyyyyyyyy'))).toBe(false);

    const text = (await s.app.inject({ url: '/metrics' })).body;
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if (!lint.error) {
      expect(lint.stdout + lint.stderr).toBe('');
      expect(lint.status).toBe(0);
    }
    const api = (await s.app.inject({ url: '/api/queues' })).json() as { queues: Array<{ name: string }> };
    expect(api.queues.map((r) => r.name)).toEqual(expect.arrayContaining([...names, 'co:lon']));
    await admin.query(`DELETE FROM bullmq.meta WHERE queue = ANY ($1)`, [['co:lon', 'y'.repeat(1100)]]);
  });

  it('finds queues on its discovery timer, within --max-queues, in another schema named by --pg-schema', async () => {
    const other = new PostgresBullFixtures(server, 'jobs_b');
    try {
      await other.migrate();
      for (const name of ['b1', 'b2', 'b3', 'b4']) await other.queue(name).add('j', {});
      // A Queue writes its meta row (what discovery reads) beside, not before, its first job: waited for.
      const meta = server.pool(1);
      const metaWritten = async (names: string[]) =>
        expect
          .poll(async () => (await meta.query(`SELECT count(DISTINCT queue)::int AS n FROM jobs_b.meta WHERE queue = ANY ($1)`, [names])).rows[0].n, POLL)
          .toBe(names.length);
      await metaWritten(['b1', 'b2', 'b3', 'b4']);
      const s = await sidecar({ pgSchema: 'jobs_b', maxQueues: '3', pgOwnSchema: 'ql_b' });
      let m: Series = new Map();
      // Collected until the collection succeeds (a loaded machine can time a first statement out).
      await expect
        .poll(async () => {
          await s.refresh();
          m = await s.scrape();
          return m.get('bullmq_exporter_up');
        }, POLL)
        .toBe(1);
      // The first three names in byte order (the series' order in the exposition is not part of the contract).
      expect(seriesOf(m, 'bullmq_queue_oldest_waiting_age_seconds').sort()).toEqual([
        seriesKey('bullmq_queue_oldest_waiting_age_seconds', { prefix: 'jobs_b', queue: 'b1' }),
        seriesKey('bullmq_queue_oldest_waiting_age_seconds', { prefix: 'jobs_b', queue: 'b2' }),
        seriesKey('bullmq_queue_oldest_waiting_age_seconds', { prefix: 'jobs_b', queue: 'b3' }),
      ]);
      expect(m.get(seriesKey('bullmq_exporter_queues_dropped', { reason: 'max_queues' }))).toBe(1);
      expect(m.get(seriesKey('bullmq_exporter_queues', { prefix: 'jobs_b' }))).toBe(3);

      // A new queue that sorts first waits for the next discovery pass: collections do not discover.
      const a0 = other.queue('a0');
      await a0.add('j', {});
      await metaWritten(['a0']);
      const collected = await s.backend.snapshots.collect();
      expect(collected.queues.map((q) => q.ref.name).sort()).toEqual(['b1', 'b2', 'b3']);
      await s.refresh();
      m = await s.scrape();
      expect(jobs(m, 'a0', 'waiting', 'jobs_b')).toBe(1);
      expect(jobs(m, 'b3', 'waiting', 'jobs_b')).toBeUndefined();
      expect(m.get(seriesKey('bullmq_exporter_queues_dropped', { reason: 'max_queues' }))).toBe(2);

      // An obliterated queue goes at the next pass.
      await a0.obliterate({ force: true });
      expect((await meta.query(`SELECT count(*)::int AS n FROM jobs_b.meta WHERE queue = 'a0'`)).rows[0].n).toBe(0);
      await s.refresh();
      expect(s.discovery.queues().map((q) => q.name)).toEqual(['b1', 'b2', 'b3']);
    } finally {
      await other.close();
    }
  });

  it('says the admin surface is off on PostgreSQL instead of serving it half', async () => {
    const logs: string[] = [];
    const s = await sidecar({ adminToken: 'a-token-of-sixteen+', logLevel: 'warn' }, logs);
    expect(logs.join('')).toMatch(/--admin-token is set, but the admin surface .* needs --backend redis/);
    expect(logs.join('')).not.toContain('a-token-of-sixteen+');
    const res = await s.app.inject({ url: '/admin/queues', headers: { authorization: 'Bearer a-token-of-sixteen+' } });
    expect(res.statusCode).toBe(404);
  });

  it('runs as `queuelens sidecar --backend postgres` with DATABASE_URL and PGPASSWORD; `top --backend postgres` shows the same queues', async () => {
    const port = await freePort();
    const dbUrl = `postgres://ql_pw@127.0.0.1:${server.port}/postgres?sslmode=disable`;
    const p = spawnCli(
      ['sidecar', '--backend', 'postgres', '--port', String(port), '--host', '127.0.0.1', '--collect-interval', '0.3', '--discovery-interval', '0.5'],
      {
        DATABASE_URL: dbUrl,
        PGPASSWORD: SECRET,
        LOG_LEVEL: 'info',
      },
    );
    try {
      const scrape = async () => parsePromText(await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) })).text());
      const m = await waitFor(
        'the process exports mixed',
        async () => {
          const got = await scrape().catch(() => undefined);
          return got && jobs(got, 'mixed', 'waiting') === 5 ? got : undefined;
        },
        60_000,
      );
      expect([jobs(m, 'mixed', 'prioritized'), jobs(m, 'work', 'completed'), m.get('bullmq_exporter_up')]).toEqual([2, 3, 1]);
      // The board takes a collection after /metrics does (its read-back and views come later in the cycle).
      const api = await waitFor('/api/queues lists mixed', async () => {
        const got = (await (await fetch(`http://127.0.0.1:${port}/api/queues`)).json()) as { queues: Array<{ name: string; backlog: number }> };
        return got.queues.some((q) => q.name === 'mixed') ? got : undefined;
      });

      // top straight from the database, the password in the URL this time: the same backlog as the sidecar's /api/queues.
      const top = await runCli(['top', '--once', '--backend', 'postgres', '--database-url', server.urlFor({ user: 'ql_pw', password: SECRET })], {}, 60_000);
      expect(top.code, top.output).toBe(0);
      // Queues under a prefix other than BullMQ's default show as <prefix>:<queue>: here the schema.
      const row = top.output.split('\n').find((l) => /^(ok|WARN|CRIT)\s+bullmq:mixed\s/.test(l));
      expect(row?.trim().split(/\s+/)[2], top.output).toBe(String(api.queues.find((q) => q.name === 'mixed')!.backlog));
      expect(top.output).not.toContain(SECRET);
    } finally {
      p.proc.kill('SIGTERM');
      expect((await p.exited).code).toBe(0);
    }
    expect(p.output()).toMatch(/sidecar starting/);
    expect(p.output()).not.toContain(SECRET);

    // A wrong password: up 0, /health 503 saying why, and neither password in the output.
    const wrong = 'wrong-pa55word-never-logged';
    const port2 = await freePort();
    const bad = spawnCli(
      ['sidecar', '--backend', 'postgres', '--port', String(port2), '--host', '127.0.0.1', '--collect-interval', '0.3', '--pg-own-schema', 'ql_own'],
      {
        DATABASE_URL: server.urlFor({ user: 'ql_pw', password: wrong }),
        PGPASSWORD: SECRET,
        LOG_LEVEL: 'debug',
      },
    );
    try {
      const health = await waitFor(
        'health says why',
        async () => {
          const res = await fetch(`http://127.0.0.1:${port2}/health`).catch(() => undefined);
          const body = res ? await res.text() : '';
          return res?.status === 503 && /password authentication failed/.test(body) ? body : undefined;
        },
        60_000,
      );
      expect(health).not.toContain(wrong);
    } finally {
      bad.proc.kill('SIGTERM');
      await bad.exited;
    }
    expect(bad.output()).toMatch(/password authentication failed/);
    expect(bad.output()).not.toContain(wrong);
    expect(bad.output()).not.toContain(SECRET);
  });

  it('turns up 0 and /health 503 while PostgreSQL is down, recovers by itself with fresh values, and never logs the password', async () => {
    const logs: string[] = [];
    const url = server.urlFor({ user: 'ql_pw', password: SECRET });
    const s = await sidecar({ collectInterval: '0.3', discoveryInterval: '0.5', logLevel: 'debug', pgOwnSchema: 'ql_own' }, logs, url);
    await s.start();
    await expect.poll(async () => (await s.scrape()).get(seriesKey('bullmq_queue_jobs', { prefix: PREFIX, queue: 'held', state: 'waiting' })), POLL).toBe(1);

    // BullMQ's own clients report a lost server as uncaught errors: closed first.
    for (const r of release.splice(0)) r();
    await bull.close();
    await server.kill();
    await seesDown(s);
    const health = await s.app.inject({ url: '/health' });
    expect(health.statusCode).toBe(503);
    expect(health.body).toMatch(/PostgreSQL at 127\.0\.0\.1:\d+\/postgres is unreachable/);
    // Every reason names the store that is down: nothing on this backend talks of Redis.
    expect(health.json().reasons).toContain('PostgreSQL connection is down');
    expect(health.body).not.toMatch(/redis/i);
    expect((await s.app.inject({ url: '/api/queues' })).json().queues).toEqual([]);

    await server.restart();
    // Fresh values: a job added after the restart is counted.
    bull = new PostgresBullFixtures(server);
    await bull.queue('held').add('after-restart', {});
    await seesHeldWaiting(s, 2);
    expect((await s.app.inject({ url: '/health' })).statusCode).toBe(200);
    await s.close();

    const text = logs.join('');
    expect(text).toMatch(/unreachable/);
    expect(text).toMatch(/collection recovered/);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(encodeURIComponent(SECRET));
  });

  it('turns up 0 while PostgreSQL hangs (stopped, connections open), and recovers when it answers again', async () => {
    const s = await sidecar({ collectInterval: '0.3', pgStatementTimeout: '1' });
    await s.start();
    await expect.poll(async () => (await s.scrape()).get('bullmq_exporter_up'), POLL).toBe(1);
    // The postmaster and every backend stopped: sockets stay open, nothing answers, not even a cancel.
    const thaw = server.freeze();
    try {
      await seesDown(s);
      expect((await s.app.inject({ url: '/health' })).statusCode).toBe(503);
    } finally {
      thaw();
    }
    await seesHeldWaiting(s, 2);
    expect((await s.app.inject({ url: '/health' })).statusCode).toBe(200);
    await s.close();
  });
});

type Scraped = { scrape(): Promise<Series> };

/** Waits until /metrics says the store is gone: up 0, redis_up 0, and no queue series left from before. */
async function seesDown(s: Scraped): Promise<void> {
  await expect
    .poll(async () => {
      const m = await s.scrape();
      return [m.get('bullmq_exporter_up'), m.get('bullmq_exporter_redis_up'), seriesOf(m, 'bullmq_queue_jobs').length];
    }, POLL)
    .toEqual([0, 0, 0]);
}

/** Waits until /metrics is up again with a fresh count of the held queue. */
async function seesHeldWaiting(s: Scraped, waiting: number): Promise<void> {
  await expect
    .poll(async () => {
      const m = await s.scrape();
      return [m.get('bullmq_exporter_up'), jobs(m, 'held', 'waiting')];
    }, POLL)
    .toEqual([1, waiting]);
}
