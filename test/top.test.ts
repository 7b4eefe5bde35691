// `queuelens top` as a user runs it: the real CLI in a tmux terminal (table, sorting keys, q and Ctrl-C exit 0),
// and --once as plain text for scripts, from a sidecar and straight from Redis, against queues whose contents
// the test enqueued.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderTop } from '../src/top/render-top.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { CLI, runCli, spawnCli } from './helpers/cli.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';
import { startTmux, type TmuxSession } from './helpers/tmux.js';

let redis: TestRedis;
let bull: BullFixtures;
let sidecar: Awaited<ReturnType<typeof testSidecar>>;
let base: string;

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  // zeta: 3 jobs and nobody consuming (critical); mid: paused with 5 waiting; alpha: 2 delayed for an hour.
  const zeta = bull.queue('zeta');
  for (let i = 0; i < 3; i += 1) await zeta.add('x', {});
  const mid = bull.queue('mid');
  await mid.pause();
  for (let i = 0; i < 5; i += 1) await mid.add('x', {});
  const alpha = bull.queue('alpha');
  for (let i = 0; i < 2; i += 1) await alpha.add('x', {}, { delay: 3_600_000 });
  sidecar = await testSidecar(redis.url, { collectInterval: '0.5' });
  await sidecar.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(sidecar.app.server.address() as AddressInfo).port}`;
  await sidecar.start();
});

afterAll(async () => {
  await sidecar?.close();
  await bull?.close();
  await redis?.stop();
});

/** Queue names in screen order, from the table rows (HEALTH then QUEUE columns). */
function rowsOf(screen: string): string[][] {
  return screen
    .split('\n')
    .filter((l) => /^(ok|WARN|CRIT)\s/.test(l))
    .map((l) => l.trim().split(/\s+/));
}

describe('renderTop', () => {
  it('fits any width, dropping the least telling columns before the reasons', async () => {
    const s = await testSidecar(redis.url, { queues: 'zeta,mid,alpha' });
    await s.refresh();
    const res = (await s.app.inject({ url: '/api/queues' })).json();
    await s.close();
    for (const width of [60, 80, 100, 160]) {
      const lines = renderTop(res, { sort: 'badness', reverse: false, width, color: false, source: 'test', legend: true });
      for (const l of lines) expect([...l].length, `${width}: ${l}`).toBeLessThanOrEqual(width);
      const header = lines.find((l) => l.startsWith('HEALTH'))!;
      expect(header).toContain('WORKERS');
      if (width >= 80) expect(header).toContain('WHY');
      expect(header.includes('DELAYED')).toBe(width >= 140);
    }
  });
});

describe('queuelens top --once (plain text)', () => {
  for (const mode of ['sidecar', 'redis'] as const) {
    it(`prints one table worst first with the enqueued numbers, from ${mode}`, async () => {
      const args = mode === 'sidecar' ? ['top', '--once', '--url', base] : ['top', '--once', '--redis-url', redis.url];
      const { code, output } = await runCli(args);
      expect(code).toBe(0);
      expect(output).not.toContain('\x1b[');
      const rows = rowsOf(output);
      // HEALTH QUEUE BACKLOG ACTIVE DELAYED OLDEST... ; mid's name carries "(paused)".
      expect(rows.map((r) => r.slice(0, 2))).toEqual([
        ['CRIT', 'zeta'],
        ['ok', 'mid'],
        ['ok', 'alpha'],
      ]);
      expect(rows[0]!.slice(2, 5)).toEqual(['3', '0', '0']);
      expect(rows[1]!.slice(2, 6)).toEqual(['(paused)', '5', '0', '0']);
      expect(rows[2]!.slice(2, 5)).toEqual(['0', '0', '2']);
      expect(output).toContain('3 job(s) waiting and no worker connected');
    });
  }

  it('exits 1 with a message when the sidecar does not answer, and 2 on a bad option', async () => {
    const down = await runCli(['top', '--once', '--url', 'http://127.0.0.1:9']);
    expect(down.code).toBe(1);
    expect(down.output).toMatch(/cannot reach the sidecar at http:\/\/127\.0\.0\.1:9/);
    const bad = await runCli(['top', '--once', '--sort', 'loudness']);
    expect(bad.code).toBe(2);
    expect(bad.output).toMatch(/--sort \(QUEUELENS_TOP_SORT\).*expected one of badness, name/);
  });
});

describe("queuelens top --redis-url with a sidecar's event accounting", () => {
  it('shows rates read from the accounting the event reader persisted, refreshing as plain text', async () => {
    const events = await testSidecar(redis.url, {
      events: 'true',
      ownPrefix: 'qltop',
      eventsLease: '5',
      eventsRetention: '3600',
      jobNameLabel: 'false',
      maxJobNames: '20',
      queues: 'busy',
      collectInterval: '0.3',
    });
    await events.start();
    const busy = bull.queue('busy');
    bull.worker('busy', async () => 'done', { concurrency: 4 });
    const feed = setInterval(() => void busy.add('x', {}), 50);
    try {
      await waitFor('accounting for busy', async () => ((await events.scrape()).get('bullmq_jobs_completed_total{prefix="bull",queue="busy"}') ?? 0) > 5);
      const top = spawnCli(['top', '--redis-url', redis.url, '--own-prefix', 'qltop', '--interval', '0.5']);
      // Plain tables, one per refresh; from the second one on, busy has a window and real rates.
      await waitFor(
        'a table with rates',
        () => {
          const last = top.output().trim().split('\n\n').pop() ?? '';
          const row = rowsOf(last).find((r) => r[1] === 'busy');
          return row !== undefined && /^\d/.test(row[6]!) && Number(row[7]) > 0;
        },
        15_000,
        100,
      );
      top.proc.kill('SIGINT');
      expect((await top.exited).code).toBe(0);
      expect(top.output()).not.toContain('\x1b[');
    } finally {
      clearInterval(feed);
      await events.close();
    }
  });
});

describe('queuelens top in a terminal', () => {
  let term: TmuxSession | undefined;
  const exitFile = join(tmpdir(), `queuelens-top-exit-${process.pid}`);

  const start = (args: string) => {
    rmSync(exitFile, { force: true });
    term = startTmux(`${process.execPath} ${CLI} top ${args}; echo $? > ${exitFile}; sleep 60`);
    return term;
  };
  const exitCode = () => waitFor('top to exit', () => existsSync(exitFile) && readFileSync(exitFile, 'utf8').trim(), 10_000);
  afterAll(() => term?.kill());

  it('draws the table, re-sorts on keys, and exits 0 on q, leaving the terminal as it was', async () => {
    const t = start(`--url ${base} --interval 0.5`);
    // The sidecar also finds the queue an earlier test fed (its worker is connected): only this test's queues count.
    const order = () =>
      rowsOf(t.screen())
        .map((r) => r[1])
        .filter((q) => ['zeta', 'mid', 'alpha'].includes(q!));
    await waitFor('the table', () => order().length === 3 && t.screen().includes('QUEUE'));
    expect(order()).toEqual(['zeta', 'mid', 'alpha']);
    expect(t.screen()).toMatch(/keys: b badness {2}n name/);
    t.send('n');
    await waitFor('name order', () => order().join() === 'alpha,mid,zeta');
    expect(t.screen()).toContain('sort: name');
    t.send('n');
    await waitFor('reversed name order', () => order().join() === 'zeta,mid,alpha' && t.screen().includes('sort: name (reversed)'));
    t.send('d');
    await waitFor('backlog order', () => order().join() === 'mid,zeta,alpha');
    // A new job shows up by itself on the next refresh.
    await bull.queue('zeta').add('x', {});
    await waitFor('the live update', () => rowsOf(t.screen()).find((r) => r[1] === 'zeta')?.[2] === '4');
    t.send('q');
    expect(await exitCode()).toBe('0');
    // The alternate screen is gone: the table no longer shows.
    expect(t.screen()).not.toContain('WORKERS');
    t.kill();
  });

  it('exits 0 on Ctrl-C, reading Redis directly', async () => {
    const t = start(`--redis-url ${redis.url} --interval 0.5`);
    await waitFor('the table', () => rowsOf(t.screen()).some((r) => r[1] === 'zeta'));
    t.send('C-c');
    expect(await exitCode()).toBe('0');
    t.kill();
  });
});
