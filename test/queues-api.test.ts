// GET /api/queues, /api/queues/:queue, the status page route and runbook route, through inject() against a
// real Redis holding real BullMQ queues; every number is what the test enqueued. Responses are validated
// against docs/api/*.schema.json.
import { createHash } from 'node:crypto';
import { Queue, UnrecoverableError } from 'bullmq';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_BUCKETS_SECONDS } from '../src/events/buckets.js';
import { REASONS } from '../src/status/queue-health.js';
import type { QueuesResponse, QueueView } from '../src/status/queue-view.js';
import { assertMatchesSchema } from './helpers/api-schema.js';
import { followed } from './helpers/process-harness.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { seriesKey } from './helpers/prom-text.js';
import { testSidecar } from './helpers/sidecar.js';

let redis: TestRedis;
let bull: BullFixtures;
let release: () => void = () => undefined;
const TEN_MIN_AGO = () => Date.now() - 600_000;
let firstEmailAt = 0;

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  // email: 5 jobs eligible for 10 minutes and nobody consuming; its dead-letter queue holds 4 (3 waiting, 1 delayed).
  const email = bull.queue('email');
  firstEmailAt = TEN_MIN_AGO();
  for (let i = 0; i < 5; i += 1) await email.add('send', { i }, { timestamp: i === 0 ? firstEmailAt : TEN_MIN_AGO() });
  const dlq = bull.queue('email-dlq');
  for (let i = 0; i < 3; i += 1) await dlq.add('dead', { i });
  await dlq.add('dead', {}, { delay: 3_600_000 });
  // webhook: one worker with concurrency 2 holding two jobs; 3 more wait behind them.
  const webhook = bull.queue('webhook');
  for (let i = 0; i < 5; i += 1) await webhook.add('post', { i });
  const gate = new Promise<void>((r) => (release = r));
  bull.worker('webhook', async () => gate, { concurrency: 2 });
  await waitFor('two active webhook jobs', async () => (await webhook.getActiveCount()) === 2);
  // export: paused with 2 waiting, 3 delayed for an hour and 1 prioritized.
  const exp = bull.queue('export');
  await exp.pause();
  for (let i = 0; i < 2; i += 1) await exp.add('csv', { i });
  for (let i = 0; i < 3; i += 1) await exp.add('csv', { i }, { delay: 3_600_000 });
  await exp.add('csv', {}, { priority: 3 });
  // The same queue name under a second prefix.
  await bull.queue('email', { prefix: 'other' }).add('send', {});
});

afterAll(async () => {
  release();
  await bull?.close();
  await redis?.stop();
});

const byName = (res: QueuesResponse, name: string, prefix = 'bull'): QueueView => {
  const q = res.queues.find((x) => x.name === name && x.prefix === prefix);
  if (!q) throw new Error(`queue ${prefix}:${name} missing from ${res.queues.map((x) => `${x.prefix}:${x.name}`).join(', ')}`);
  return q;
};

describe('GET /api/queues', () => {
  it('reports every queue with the depths, ages, workers and dead letters that were enqueued, worst first', async () => {
    const s = await testSidecar(redis.url, { prefixes: 'bull,other' });
    await s.refresh();
    const res = await s.app.inject({ url: '/api/queues' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json() as QueuesResponse;
    assertMatchesSchema('queues.schema.json', body);
    expect(body.collection).toMatchObject({ ok: true, error: null, redisUp: true, intervalSeconds: 60 });
    expect(body.accountingAvailable).toBe(false);
    expect(body.queues).toHaveLength(5);

    const email = byName(body, 'email');
    expect(email.jobs).toEqual({ waiting: 5, prioritized: 0, delayed: 0, active: 0, waiting_children: 0, completed: 0, failed: 0 });
    expect(email.backlog).toBe(5);
    expect(email.workers).toBe(0);
    expect(email.oldestWaitingAgeSeconds).toBeGreaterThanOrEqual(600);
    // At most the time since the first job's timestamp was taken, on the same (system) clock.
    expect(email.oldestWaitingAgeSeconds).toBeLessThanOrEqual((Date.now() - firstEmailAt) / 1000);
    expect(email.deadLetter).toMatchObject({ queue: 'email-dlq', jobs: 4, addedLast15m: null });
    expect(email.windows).toEqual({ '1m': null, '15m': null });
    expect(email.health.status).toBe('critical');
    expect(email.health.reasons.map((r) => r.code)).toEqual(['no_workers', 'oldest_job_too_old', 'dead_letters']);
    expect(email.health.reasons[0]).toMatchObject({
      alert: 'BullMQNoWorkers',
      runbook: '/runbooks/BullMQNoWorkers.md',
      message: '5 job(s) waiting and no worker connected',
    });

    const webhook = byName(body, 'webhook');
    expect(webhook.jobs.active).toBe(2);
    expect(webhook.jobs.waiting).toBe(3);
    expect(webhook.workers).toBe(1);
    expect(webhook.deadLetter).toBeNull();
    expect(webhook.health).toEqual({ status: 'ok', rank: 0, reasons: [] });

    const exp = byName(body, 'export');
    expect(exp.paused).toBe(true);
    expect(exp.jobs).toMatchObject({ waiting: 2, delayed: 3, prioritized: 1 });
    expect(exp.backlog).toBe(3);
    // Paused on purpose: informed, not flagged for missing workers.
    expect(exp.health.status).toBe('ok');
    expect(exp.health.reasons.map((r) => r.code)).toEqual(['paused']);

    const dlq = byName(body, 'email-dlq');
    expect(dlq.deadLetterOf).toBe('email');
    expect(dlq.jobs).toMatchObject({ waiting: 3, delayed: 1 });
    expect(dlq.health.status).toBe('ok');

    // Worst first: the two critical email queues (the older backlog first), then the healthy ones by oldest
    // waiting age, which follows the order they were filled in: email-dlq, webhook, export.
    expect(body.queues.map((q) => `${q.prefix}:${q.name}`)).toEqual(['bull:email', 'other:email', 'bull:email-dlq', 'bull:webhook', 'bull:export']);
    await s.close();
  });

  it('adds 15 minutes of history per queue with ?history=1', async () => {
    const s = await testSidecar(redis.url);
    await s.refresh();
    await s.refresh();
    const body = (await s.app.inject({ url: '/api/queues?history=1' })).json() as QueuesResponse;
    assertMatchesSchema('queues.schema.json', body);
    const h = byName(body, 'email').history!;
    // One point per collection while the history is young.
    expect(h.t).toHaveLength(2);
    expect(h.backlog).toEqual([5, 5]);
    expect(h.deadLetterJobs).toEqual([4, 4]);
    expect(h.addedPerSecond).toEqual([null, null]);
    expect(byName(body, 'export').history!.delayed).toEqual([3, 3]);
    await s.close();
  });

  it('links Bull Board only when the admin surface is on', async () => {
    const off = await testSidecar(redis.url);
    await off.refresh();
    expect((await off.app.inject({ url: '/api/queues' })).json().links).toEqual({ metrics: '/metrics', health: '/health', bullBoard: null });
    await off.close();
    const on = await testSidecar(redis.url, { adminToken: 'a-token-of-sixteen-chars' });
    await on.refresh();
    expect((await on.app.inject({ url: '/api/queues' })).json().links.bullBoard).toBe('/admin/queues');
    await on.close();
  });

  it('serves one queue, 404 for an unknown one, 409 when the name exists under two prefixes', async () => {
    const s = await testSidecar(redis.url, { prefixes: 'bull,other' });
    await s.refresh();
    const one = await s.app.inject({ url: '/api/queues/webhook' });
    expect(one.statusCode).toBe(200);
    assertMatchesSchema('queue.schema.json', one.json());
    expect(one.json().queue).toMatchObject({ name: 'webhook', jobs: { active: 2, waiting: 3 } });
    expect((await s.app.inject({ url: '/api/queues/nope' })).statusCode).toBe(404);
    const amb = await s.app.inject({ url: '/api/queues/email' });
    expect(amb.statusCode).toBe(409);
    expect(amb.json().message).toMatch(/bull, other.*\?prefix=/);
    const pick = await s.app.inject({ url: '/api/queues/email?prefix=other&history=1' });
    expect(pick.statusCode).toBe(200);
    assertMatchesSchema('queue.schema.json', pick.json());
    expect(pick.json().queue).toMatchObject({ prefix: 'other', backlog: 1 });
    await s.close();
  });

  it('serves a queue by name however long the name is, up to what is exported', async () => {
    // 200 ASCII characters, and 999 bytes of UTF-8 (2,997 characters once percent-encoded in the URL).
    const names = ['q'.repeat(200), '\u65e5'.repeat(333)];
    for (const name of names) {
      const q = new Queue(name, { connection: { host: '127.0.0.1', port: redis.port }, prefix: 'long' });
      await q.add('x', {});
      await q.close();
    }
    const s = await testSidecar(redis.url, { prefixes: 'long' });
    await s.refresh();
    for (const name of names) {
      const res = await s.app.inject({ url: `/api/queues/${encodeURIComponent(name)}` });
      expect(res.statusCode, `${name.length} characters`).toBe(200);
      expect(res.json().queue).toMatchObject({ prefix: 'long', name, jobs: { waiting: 1 } });
    }
    await s.close();
  });

  it('serves the status page with a CSP that allows only its own inline script', async () => {
    const s = await testSidecar(redis.url);
    const res = await s.app.inject({ url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    const script = /<script>([\s\S]*?)<\/script>/.exec(res.body)![1]!;
    const hash = createHash('sha256').update(script).digest('base64');
    expect(res.headers['content-security-policy']).toContain(`script-src 'sha256-${hash}'`);
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
    // Self-contained: nothing is loaded from another origin.
    expect(res.body).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect((await s.app.inject({ url: '/runbooks/..%2Fpackage.json' })).statusCode).toBe(404);
    expect((await s.app.inject({ url: '/runbooks/BullMQNoSuchAlert.md' })).statusCode).toBe(404);
    await s.close();
  });

  it("names only alerts that exist, and serves each one's runbook from docs/runbooks", async () => {
    const rules = parseYaml(readFileSync(new URL('../alerts/queuelens.rules.yml', import.meta.url), 'utf8')) as {
      groups: Array<{ rules: Array<{ alert?: string }> }>;
    };
    const alerts = new Set(rules.groups.flatMap((g) => g.rules.map((r) => r.alert)).filter(Boolean));
    const schema = JSON.parse(readFileSync(new URL('../docs/api/queues.schema.json', import.meta.url), 'utf8'));
    expect(schema.$defs.reason.properties.code.enum).toEqual(Object.keys(REASONS));
    const s = await testSidecar(redis.url);
    for (const { alert } of Object.values(REASONS)) {
      if (alert === null) continue;
      expect(alerts.has(alert), alert).toBe(true);
      const res = await s.app.inject({ url: `/runbooks/${alert}.md` });
      expect(res.statusCode, alert).toBe(200);
      expect(res.headers['content-type']).toBe('text/markdown; charset=utf-8');
      expect(res.body).toBe(readFileSync(new URL(`../docs/runbooks/${alert}.md`, import.meta.url), 'utf8'));
    }
    await s.close();
  });

  it('shows no stale queues while Redis is down, and recovers', async () => {
    const s = await testSidecar(redis.url);
    await s.refresh();
    await redis.kill();
    await s.refresh();
    const down = (await s.app.inject({ url: '/api/queues' })).json() as QueuesResponse;
    assertMatchesSchema('queues.schema.json', down);
    expect(down.collection.ok).toBe(false);
    expect(down.collection.error).toMatch(/Redis/);
    expect(down.queues).toEqual([]);
    expect((await s.app.inject({ url: '/api/queues/email' })).json().message).toMatch(/no data/);
    await redis.restart();
    await waitFor('collection to recover', async () => {
      await s.refresh();
      return s.snapshot()?.ok;
    });
    const up = (await s.app.inject({ url: '/api/queues' })).json() as QueuesResponse;
    expect(up.collection.ok).toBe(true);
    await s.close();
  });
});

describe('GET /api/queues with the event reader', () => {
  const EVENTS = {
    events: 'true',
    ownPrefix: 'qlapi',
    eventsLease: '5',
    eventsRetention: '3600',
    jobNameLabel: 'false',
    maxJobNames: '20',
    queues: 'acct',
    collectInterval: '0.3',
    discoveryInterval: '0.3',
  };

  it('computes rates, failure ratio and latency quantiles over the window from the accounting', async () => {
    const q = bull.queue('acct');
    bull.worker(
      'acct',
      async (job) => {
        if (job.data.fail) throw new UnrecoverableError('planned failure');
        await new Promise((r) => setTimeout(r, 60));
      },
      { concurrency: 4 },
    );
    // A first sidecar accounts for one warm-up job and persists it; the second starts its history on top of
    // that, so its windows hold exactly the workload below.
    const first = await testSidecar(redis.url, EVENTS);
    await first.start();
    // The reader counts a stream from its first entry only once it follows the queue (its hash exists; a stream first
    // seen with history starts at its end): on a loaded machine the leader's reader starts a while after start().
    const raw = redis.client();
    await followed(raw, { prefix: 'bull', name: 'acct' }, EVENTS.ownPrefix, 60_000);
    raw.disconnect();
    await q.add('warm', {});
    const completed = (s: typeof first) => async () => (await s.scrape()).get(seriesKey('bullmq_jobs_completed_total', { prefix: 'bull', queue: 'acct' }));
    await waitFor('the warm-up job in the accounting', async () => (await completed(first)()) === 1).catch(async (err: Error) => {
      // What the reader had done by then, to tell a slow leader from a lost event when this fails.
      const m = await first.scrape();
      const pick = (name: string, labels: Record<string, string> = { prefix: 'bull', queue: 'acct' }) => `${name}=${m.get(seriesKey(name, labels))}`;
      const state = [
        pick('bullmq_exporter_leader', {}),
        pick('bullmq_exporter_events_read_total'),
        pick('bullmq_jobs_added_total'),
        pick('bullmq_jobs_completed_total'),
        pick('bullmq_exporter_up', {}),
      ];
      throw new Error(`${err.message} (${state.join(', ')}; job counts ${JSON.stringify(await q.getJobCounts())})`);
    });
    const addedBefore = (await first.scrape()).get(seriesKey('bullmq_jobs_added_total', { prefix: 'bull', queue: 'acct' })) ?? 0;
    await first.close();

    const s = await testSidecar(redis.url, EVENTS);
    await s.start();
    // (The warm-up's `added` may predate the first reader's cursor; its completion is what is persisted for sure.)
    await waitFor('a first point with the persisted accounting', completed(s), 15_000).then((n) => expect(n).toBe(1));
    for (let i = 0; i < 12; i += 1) await q.add('work', { fail: i % 4 === 3 }, { attempts: 1 });
    await waitFor('the workload in the accounting', async () => {
      const m = await s.scrape();
      return (
        m.get(seriesKey('bullmq_jobs_added_total', { prefix: 'bull', queue: 'acct' })) === addedBefore + 12 &&
        m.get(seriesKey('bullmq_jobs_completed_total', { prefix: 'bull', queue: 'acct' })) === 10 &&
        m.get(seriesKey('bullmq_jobs_failed_total', { prefix: 'bull', queue: 'acct' })) === 3
      );
    });
    // The board sees the same collection that rendered those counters, or a later one.
    const body = await waitFor('the window to include the workload', async () => {
      const b = (await s.app.inject({ url: '/api/queues?history=1' })).json() as QueuesResponse;
      const w = byName(b, 'acct').windows['15m'];
      return w && Math.round(w.rates.added * w.seconds) === 12 && w.processing.count === 12 ? b : undefined;
    });
    assertMatchesSchema('queues.schema.json', body);
    expect(body.accountingAvailable).toBe(true);
    const acct = byName(body, 'acct');
    const w = acct.windows['15m']!;
    expect(w.rates.completed * w.seconds).toBeCloseTo(9, 6);
    expect(w.rates.failed * w.seconds).toBeCloseTo(3, 6);
    expect(w.rates.retried).toBe(0);
    expect(w.failureRatio).toBeCloseTo(0.25, 9);
    expect(w.wait.count).toBe(12);
    // 9 attempts of at least 60 ms and 3 that fail at once. How long each took on this (maybe busy) machine is in
    // the stream, on the clock the reader measures with: `active` to the outcome. The p50 lies in the histogram
    // bucket that holds the 6th of the 12.
    const started = new Map<string, number>();
    const took: number[] = [];
    const work = new Set<string>();
    for (const [id, flat] of (await redis.client().xrange('bull:acct:events', '-', '+')) as Array<[string, string[]]>) {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!;
      const ms = Number(id.split('-')[0]);
      if (f.event === 'added' && f.name === 'work') work.add(f.jobId!);
      if (f.event === 'active') started.set(f.jobId!, ms);
      if ((f.event === 'completed' || f.event === 'failed') && work.has(f.jobId!)) took.push((ms - started.get(f.jobId!)!) / 1000);
    }
    expect(took).toHaveLength(12);
    const sixth = took.sort((a, b) => a - b)[5]!;
    expect(sixth).toBeGreaterThanOrEqual(0.06);
    const hi = EVENT_BUCKETS_SECONDS.find((b) => b >= sixth)!;
    const lo = EVENT_BUCKETS_SECONDS.filter((b) => b < sixth).at(-1) ?? 0;
    expect(w.processing.p50).toBeGreaterThanOrEqual(lo);
    expect(w.processing.p50).toBeLessThanOrEqual(hi);
    // Younger than a minute, both windows cover the same history.
    expect(acct.windows['1m']).toEqual(w);
    // 12 finished is under the 20 the failure-rate condition needs: no verdict on 25 %.
    expect(acct.health.reasons.map((r) => r.code)).not.toContain('high_failure_rate');
    expect(acct.history!.addedPerSecond.some((r) => r !== null && r > 0)).toBe(true);
    await s.close();
  });
});
