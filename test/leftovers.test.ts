// Nothing outlives the process that started it: a demo killed with SIGKILL (no chance to clean up) leaves no
// redis-server or Prometheus running, their watchdogs remove their temporary directories, and the next demo start
// removes the directories the killed one owned.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { CLI, spawnCli, type CliProcess } from './helpers/cli.js';
import { alive, descendants } from './helpers/processes.js';
import { freePort, startTestRedis } from './helpers/redis-server.js';

const hasPrometheus = !spawnSync('prometheus', ['--version']).error;
const tmp = mkdtempSync(join(tmpdir(), 'ql-leftovers-'));

const started: CliProcess[] = [];
const orphans: number[] = [];

afterAll(() => {
  // A failed assertion must not leave a demo running (the point of this file).
  for (const p of started) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
  for (const pid of orphans.filter(alive)) process.kill(pid, 'SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

const demoDirs = () =>
  readdirSync(tmp)
    .filter((n) => n.startsWith('queuelens-demo-'))
    .sort();

describe('leftovers', () => {
  it('a SIGKILLed demo leaves no server running; its temp dirs are gone after the next start', async () => {
    // Left by runs before this one: a dead owner's directory, and an old unowned one.
    mkdirSync(join(tmp, 'queuelens-demo-exports-999999-abcdef'));
    mkdirSync(join(tmp, 'queuelens-demo-redis-ghijkl'));
    utimesSync(join(tmp, 'queuelens-demo-redis-ghijkl'), new Date(Date.now() - 2 * 3_600_000), new Date(Date.now() - 2 * 3_600_000));
    const start = async () => {
      // Nothing answers at this REDIS_URL: the demo starts a private redis-server.
      const args = [
        'demo',
        '--redis-url',
        `redis://127.0.0.1:${await freePort()}`,
        '--port',
        String(await freePort()),
        '--prometheus-port',
        String(hasPrometheus ? await freePort() : 0),
        '--jobs-per-second',
        '20',
      ];
      const p = spawnCli(args, { TMPDIR: tmp });
      started.push(p);
      await waitFor('the demo to print its URLs', () => p.output().includes('queuelens demo is running'), 60_000);
      return p;
    };

    const first = await start();
    expect(first.output()).toContain('removed 2 directory(ies) an earlier demo run left behind');
    const servers = descendants(first.proc.pid!).filter((p) => p.comm === 'redis-server' || p.comm === 'prometheus');
    expect(servers.map((s) => s.comm).sort()).toEqual(hasPrometheus ? ['prometheus', 'redis-server'] : ['redis-server']);
    const dirs = demoDirs();
    expect(dirs.filter((d) => /^queuelens-demo-(redis|prometheus|exports)-\d+-/.test(d))).toHaveLength(hasPrometheus ? 3 : 2);

    first.proc.kill('SIGKILL');
    await first.exited;
    // The watchdogs notice within a second or so; generous for a loaded machine.
    await waitFor('every server of the killed demo to stop', () => servers.every((s) => !alive(s.pid)), 60_000, 200);
    await waitFor("the servers' directories removed", () => demoDirs().every((d) => !/^queuelens-demo-(redis|prometheus)-/.test(d)), 60_000, 200);
    // The export directory has no server to watch it: the next start removes it.
    expect(demoDirs()).toEqual([expect.stringMatching(new RegExp(`^queuelens-demo-exports-${first.proc.pid}-`))]);

    const second = await start();
    expect(second.output()).toContain('removed 1 directory(ies) an earlier demo run left behind');
    expect(demoDirs().some((d) => d.includes(`-${first.proc.pid}-`))).toBe(false);
    second.proc.kill('SIGINT');
    expect(await second.exited).toEqual({ code: 0, signal: null });
    expect(demoDirs()).toEqual([]);
  }, 300_000);

  it('a demo whose parent is killed (npm sent SIGTERM, a terminal gone) shuts itself down in order', async () => {
    const redis = await startTestRedis();
    try {
      const port = await freePort();
      // A parent shell in the role of npm: killing it leaves the demo reparented.
      const demoArgs = [process.execPath, CLI, 'demo', '--redis-url', redis.url, '--port', String(port), '--prometheus-port', '0', '--log-level', 'silent'];
      const shell = spawn('sh', ['-c', `${demoArgs.map((a) => `'${a}'`).join(' ')} & echo "pid=$!"; wait`], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, TMPDIR: tmp },
      });
      let out = '';
      shell.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const pid = Number(await waitFor('the demo pid', () => /pid=(\d+)/.exec(out)?.[1], 30_000));
      orphans.push(pid);
      await waitFor('the demo running', () => out.includes('queuelens demo is running'), 60_000);
      const r = redis.client();
      await waitFor('demo keys in Redis', async () => (await r.exists('queuelens-demo:email:meta')) === 1);
      shell.kill('SIGKILL');
      await waitFor('the demo to end by itself', () => !alive(pid), 60_000, 200);
      expect(out).toMatch(/queuelens demo: removed its \d+ key\(s\)/);
      expect((await r.keys('queuelens-demo*')).length).toBe(0);
      expect(demoDirs()).toEqual([]);
    } finally {
      await redis.stop();
    }
  }, 180_000);
});
