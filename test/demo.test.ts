// `queuelens demo` end to end, as a user runs it: the real CLI against a test Redis. Within 30 s every metric
// family the bundled dashboards read has data, the status page and API show the accounting, Prometheus (when
// installed) scrapes it with the alert rules loaded; Ctrl-C (SIGINT) exits 0 and leaves no process or port behind.
import { execFileSync, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METRICS } from '../src/metrics/definitions.js';
import type { QueuesResponse } from '../src/status/queue-view.js';
import { waitFor } from './helpers/bullmq.js';
import { spawnCli, type CliProcess } from './helpers/cli.js';
import { dashboardMetricFamilies } from './helpers/dashboard-families.js';
import { parsePromText } from './helpers/prom-text.js';
import { keyspace } from './helpers/keyspace.js';
import { alive, descendants } from './helpers/processes.js';
import { freePort, startTestRedis, type TestRedis } from './helpers/redis-server.js';

const hasPrometheus = !spawnSync('prometheus', ['--version']).error;
let redis: TestRedis;
let demo: CliProcess | undefined;

beforeAll(async () => {
  redis = await startTestRedis();
});

const others: CliProcess[] = [];

afterAll(async () => {
  if (demo && demo.proc.exitCode === null) demo.proc.kill('SIGKILL');
  for (const p of others) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
  await redis?.stop();
});

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

describe('queuelens demo', () => {
  it('shows data for every dashboard metric family, and SIGINT leaves nothing behind', async () => {
    const [port, promPort] = [await freePort(), await freePort()];
    // A developer's own queues of the same names under the common prefix: the demo must leave them alone.
    const r = redis.client();
    const mine = new Queue('email', { connection: r, prefix: 'bull' });
    await mine.add('welcome', { to: 'me@example.com' }, { delay: 3_600_000 });
    await mine.close();
    const notDemo = /^queuelens-demo(-sidecar)?:/;
    const before = await keyspace(r, notDemo);
    demo = spawnCli([
      'demo',
      '--redis-url',
      redis.url,
      '--port',
      String(port),
      '--prometheus-port',
      String(hasPrometheus ? promPort : 0),
      '--jobs-per-second',
      '20',
    ]);
    await waitFor('the demo to print its URLs', () => demo!.output().includes('queuelens demo is running'), 60_000);
    const out = demo.output();
    const base = `http://127.0.0.1:${port}`;
    for (const line of [
      `status page   ${base}/`,
      `metrics       ${base}/metrics`,
      `Bull Board    ${base}/admin/queues`,
      '--scenario <no-workers|failing-webhook|stall|backlog>',
      'the demo writes only keys under queuelens-demo:* and queuelens-demo-sidecar:*, removed on exit (--keep keeps them)',
      'npx queuelens loadgen --prefix queuelens-demo',
    ])
      expect(out).toContain(line);
    // The copy-paste commands talk to this demo's Redis (the user's, here), not to REDIS_URL or the default.
    const commands = out.split('\n').filter((l) => /npx queuelens (dlq|loadgen) /.test(l));
    expect(commands).toHaveLength(2);
    for (const c of commands) expect(c.split(' ')).toContain(redis.url);
    for (const c of commands) expect(c).toContain(`--redis-url ${redis.url}`);
    const token = /admin token (\S+):/.exec(out)![1]!;

    // Counters start at 0, so presence alone proves little: what the demo mix is built to exercise must have moved.
    const moving = [
      'bullmq_jobs_added_total',
      'bullmq_jobs_completed_total',
      'bullmq_jobs_failed_total',
      'bullmq_jobs_retried_total',
      'bullmq_jobs_stalled_total',
      'bullmq_jobs_deduplicated_total',
      'bullmq_dlq_added_total',
      'bullmq_exporter_events_read_total',
      'bullmq_job_wait_seconds_count',
      'bullmq_job_processing_seconds_count',
      'bullmq_job_e2e_seconds_count',
    ];
    // Less the families whose series appear only once non-zero (the series budget; the demo need not pause a queue).
    const sparse = new Set<string>(Object.values(METRICS).flatMap((d) => ('sparse' in d ? [d.name] : [])));
    const families = dashboardMetricFamilies().filter((f) => !sparse.has(f) || moving.includes(f));
    expect(families.length).toBeGreaterThan(25);
    expect(families).toEqual(expect.arrayContaining(moving.map((m) => m.replace(/_count$/, ''))));
    let missing: string[] = families;
    await waitFor(
      'every dashboard metric family on /metrics, with the demo activity in them',
      async () => {
        const series = [...parsePromText(await (await fetch(`${base}/metrics`)).text()).entries()];
        const names = new Set(series.map(([k]) => k.replace(/\{.*$/, '').replace(/_(bucket|sum|count)$/, '')));
        const maxOf = (name: string) => Math.max(0, ...series.filter(([k]) => k.replace(/\{.*$/, '') === name).map(([, v]) => v));
        missing = [...families.filter((f) => !names.has(f)), ...moving.filter((m) => maxOf(m) === 0).map((m) => `${m} (still 0)`)];
        return missing.length === 0;
      },
      // Seconds on an idle machine (the planned stall is the slowest); generous, because a loaded one is no failure.
      120_000,
      500,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; still missing: ${missing.join(', ')}`);
    });

    // The same accounting behind the API and the status page; the admin surface is on with the printed token.
    const api = await waitFor('the windows of the API', async () => {
      const a = (await (await fetch(`${base}/api/queues`)).json()) as QueuesResponse;
      return a.accountingAvailable ? a : undefined;
    });
    expect(api.links.bullBoard).toBe('/admin/queues');
    expect(api.queues.map((q) => q.name)).toEqual(expect.arrayContaining(['email', 'webhook', 'export']));
    expect(new Set(api.queues.map((q) => q.prefix))).toEqual(new Set(['queuelens-demo']));
    expect(api.queues.find((q) => q.name === 'email')!.windows['1m']!.rates.completed).toBeGreaterThan(0);
    expect((await fetch(`${base}/`)).status).toBe(200);
    expect((await fetch(`${base}/admin/queues`)).status).toBe(401);
    expect((await fetch(`${base}/admin/dlq/email`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);

    if (hasPrometheus) {
      const prom = `http://127.0.0.1:${promPort}`;
      // The printed link works on the Prometheus actually started (Debian's serves only /classic/alerts).
      const alerts = /Prometheus {4}(\S+)/.exec(out)![1]!;
      expect(alerts.startsWith(`${prom}/`)).toBe(true);
      expect((await fetch(alerts)).status).toBe(200);
      expect(await (await fetch(alerts)).text()).toContain('BullMQ');
      const rules = (await (await fetch(`${prom}/api/v1/rules`)).json()) as { data: { groups: unknown[] } };
      expect(rules.data.groups.length).toBeGreaterThan(0);
      await waitFor(
        'Prometheus to scrape the demo sidecar',
        async () => {
          const r = (await (await fetch(`${prom}/api/v1/query?query=${encodeURIComponent('sum(bullmq_jobs_completed_total)')}`)).json()) as {
            data: { result: Array<{ value: [number, string] }> };
          };
          return Number(r.data.result[0]?.value[1] ?? 0) > 0;
        },
        60_000,
        500,
      );
    }

    const children = descendants(demo.proc.pid!).map((p) => p.pid);
    demo.proc.kill('SIGINT');
    // Code 0 means it finished within its own 20 s shutdown deadline (past it, it exits 1); the race only keeps a hung
    // demo from hanging the suite.
    const exit = await Promise.race([demo.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000))]);
    expect(exit).toEqual({ code: 0, signal: null });
    // The servers' watchdogs notice their server is gone within a second or so.
    await waitFor('every child of the demo to end', () => children.every((pid) => !alive(pid)), 60_000, 200).catch((err: Error) => {
      throw new Error(`${err.message}: ${children.filter(alive).join(', ')} still running`);
    });
    expect(await portOpen(port)).toBe(false);
    if (hasPrometheus) expect(await portOpen(promPort)).toBe(false);
    // No stray helper either (a crashing consumer or Prometheus started for this Redis or port).
    const stray = execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' })
      .split('\n')
      .filter((a) => a.includes(redis.url) || a.includes(`127.0.0.1:${promPort}`));
    expect(stray).toEqual([]);
    // Every demo key removed; every other key as it was.
    expect(demo.output()).toMatch(/queuelens demo: removed its \d+ key\(s\) from redis:\/\/127\.0\.0\.1:\d+/);
    expect(Object.keys(await keyspace(r)).filter((k) => notDemo.test(k))).toEqual([]);
    expect(await keyspace(r, notDemo)).toEqual(before);
  }, 300_000);

  it('the copy-paste commands name a Redis with a password masked, and say to set REDIS_URL instead', async () => {
    const password = 'demo-pass-0123456789';
    const locked = await startTestRedis({ password });
    try {
      const p = spawnCli(['demo', '--redis-url', locked.url, '--port', String(await freePort()), '--prometheus-port', '0', '--jobs-per-second', '5']);
      others.push(p);
      await waitFor('the demo to print its URLs', () => p.output().includes('queuelens demo is running') || p.proc.exitCode !== null, 60_000);
      const out = p.output();
      expect(out).not.toContain(password);
      const commands = out.split('\n').filter((l) => /npx queuelens (dlq|loadgen) /.test(l));
      expect(commands).toHaveLength(2);
      const port = new URL(locked.url).port;
      for (const c of commands) expect(c).toMatch(new RegExp(`--redis-url '[^' ]*\\*\\*\\*[^' ]*@127\\.0\\.0\\.1:${port}'( |$)`));
      expect(out).toContain('set REDIS_URL to the real one');
      p.proc.kill('SIGINT');
      expect(await p.exited).toEqual({ code: 0, signal: null });
    } finally {
      await locked.stop();
    }
  }, 300_000);

  it('--keep keeps its keys; one demo per Redis; the next start removes what a killed or kept run left', async () => {
    const r = redis.client();
    const demoKeys = async () => Object.keys(await keyspace(r)).filter((k) => /^queuelens-demo(-sidecar)?:/.test(k));
    const start = async (...extra: string[]) => {
      const p = spawnCli(['demo', '--redis-url', redis.url, '--port', String(await freePort()), '--prometheus-port', '0', '--jobs-per-second', '20', ...extra]);
      others.push(p);
      await waitFor('the demo to print its URLs', () => p.output().includes('queuelens demo is running') || p.proc.exitCode !== null, 60_000);
      return p;
    };
    const a = await start('--keep');
    expect(a.output()).toContain('kept on exit (--keep)');
    await waitFor('demo jobs in Redis', async () => (await r.exists('queuelens-demo:email:meta')) === 1);
    const b = await start();
    expect(await b.exited).toEqual({ code: 1, signal: null });
    expect(b.output()).toContain('another queuelens demo is running against this Redis');
    // Its holder lives: the message names how long a killed holder's claim would take to lapse.
    expect(b.output()).toMatch(/its claim lapses in \d+ s/);
    a.proc.kill('SIGINT');
    expect(await a.exited).toEqual({ code: 0, signal: null });
    expect(a.output()).toContain('queuelens demo: kept its keys');
    const kept = await demoKeys();
    expect(kept.length).toBeGreaterThan(0);
    expect(kept).not.toContain('queuelens-demo-sidecar:demo:running');

    const c = await start();
    expect(c.output()).toMatch(/removed \d+ key\(s\) an earlier demo run left behind/);
    c.proc.kill('SIGKILL'); // no clean-up at all: its claim stays, held by a process that is gone
    await c.exited;
    expect(await r.pttl('queuelens-demo-sidecar:demo:running')).toBeGreaterThan(0);
    // Restarted at once, not 30 s later: the claim's holder is dead on this host, so the next start takes it over.
    const d = await start();
    expect(d.output()).toContain('queuelens demo is running');
    expect(d.output()).toMatch(/removed \d+ key\(s\) an earlier demo run left behind/);
    d.proc.kill('SIGINT');
    expect(await d.exited).toEqual({ code: 0, signal: null });
    expect(await demoKeys()).toEqual([]);
  }, 300_000);
});
