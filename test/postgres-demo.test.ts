// `queuelens demo --backend postgres` as a user runs it: the real CLI, with a private PostgreSQL (initdb) when none
// is given, or the database at --database-url. The sidecar, the three workers and the load mix all run on BullMQ's
// PostgreSQL backend: /metrics shows completed jobs and dead letters of the demo's schema; SIGINT exits 0 and leaves
// no server, directory or schema behind, and a database it was given keeps everything that is not the demo's.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { spawnCli, type CliProcess } from './helpers/cli.js';
import { parsePromText } from './helpers/prom-text.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres-server.js';
import { freePort } from './helpers/redis-server.js';

let server: TestPostgres;
const procs: CliProcess[] = [];

beforeAll(async () => {
  server = await startTestPostgres();
});

afterAll(async () => {
  for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
  await server?.stop();
});

async function startDemo(...extra: string[]): Promise<{ p: CliProcess; port: number }> {
  const port = await freePort();
  const p = spawnCli(['demo', '--backend', 'postgres', '--port', String(port), '--prometheus-port', '0', '--jobs-per-second', '20', ...extra]);
  procs.push(p);
  await waitFor('the demo to print its URLs', () => p.output().includes('queuelens demo is running') || p.proc.exitCode !== null, 90_000);
  return { p, port };
}

/** Values of `name` in the demo's /metrics whose labels include `labels`, summed by queue. */
async function metric(port: number, name: string, labels: Record<string, string> = {}): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const [key, value] of parsePromText(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())) {
    if (key !== name && !key.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => key.includes(`${k}=${JSON.stringify(v)}`))) continue;
    const queue = /queue="([^"]*)"/.exec(key)?.[1] ?? '';
    out.set(queue, (out.get(queue) ?? 0) + value);
  }
  return out;
}

const demoDirs = (pid: number) => readdirSync(tmpdir()).filter((d) => d.startsWith(`queuelens-demo-`) && d.includes(`-${pid}-`));

describe('queuelens demo --backend postgres', () => {
  it('without a database starts a private PostgreSQL; the sidecar shows the workers’ jobs and dead letters; SIGINT leaves nothing behind', async () => {
    const { p, port } = await startDemo();
    expect(p.output()).toMatch(/PostgreSQL {4}postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres \(private, removed on exit\)/);
    const pid = p.proc.pid!;
    expect(demoDirs(pid).some((d) => d.startsWith('queuelens-demo-postgres-'))).toBe(true);
    await waitFor(
      'completed email and webhook jobs, and dead letters, in /metrics',
      async () => {
        const done = await metric(port, 'bullmq_queue_jobs', { state: 'completed', prefix: 'queuelens_demo' });
        const dlq = await metric(port, 'bullmq_dlq_jobs', { prefix: 'queuelens_demo' });
        return (done.get('email') ?? 0) > 0 && (done.get('webhook') ?? 0) > 0 && [...dlq.values()].some((n) => n > 0);
      },
      90_000,
    );
    expect((await metric(port, 'bullmq_queue_workers', { prefix: 'queuelens_demo' })).get('email')).toBeGreaterThan(0);
    // The planned stall (a consumer on PostgreSQL that dies holding an export job) is reclaimed and counted.
    await waitFor('a stalled export job counted', async () => ((await metric(port, 'bullmq_jobs_stalled_total')).get('export') ?? 0) >= 1, 90_000);
    p.proc.kill('SIGINT');
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(demoDirs(pid)).toEqual([]);
    // The server is gone; its watchdog (watch-child.ts) notices its parent left within a second or so and goes too.
    const mentioning = () =>
      execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' })
        .split('\n')
        .filter((a) => a.includes(`queuelens-demo-postgres-${pid}-`));
    expect(mentioning().filter((a) => !a.includes('queuelens-watchdog'))).toEqual([]);
    await waitFor('no process of the private server left', () => mentioning().length === 0, 30_000);
  }, 300_000);

  it('with --database-url uses that database, writes only its two schemas, one demo at a time, and drops them on exit', async () => {
    const db = server.pool(2);
    await db.query('CREATE SCHEMA bullmq; CREATE TABLE bullmq.mine (x int); INSERT INTO bullmq.mine VALUES (1)');
    const schemas = async () =>
      (
        await db.query<{ n: string }>("SELECT nspname AS n FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1")
      ).rows.map((r) => r.n);
    const { p } = await startDemo('--database-url', server.url);
    expect(p.output()).toContain('(yours: the demo writes only its schemas queuelens_demo and queuelens_demo_sidecar, removed on exit (--keep keeps them))');
    await waitFor('demo jobs in its schema', async () => Number((await db.query('SELECT count(*) AS n FROM queuelens_demo.job')).rows[0].n) > 0);
    const second = await startDemo('--database-url', server.url);
    expect(await second.p.exited).toEqual({ code: 1, signal: null });
    expect(second.p.output()).toContain('another queuelens demo is running against this PostgreSQL');
    p.proc.kill('SIGINT');
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(p.output()).toMatch(/queuelens demo: removed its 2 schema\(s\)/);
    expect(await schemas()).toEqual(['bullmq', 'public']);
    expect((await db.query('SELECT x FROM bullmq.mine')).rows).toEqual([{ x: 1 }]);
  }, 300_000);
});
