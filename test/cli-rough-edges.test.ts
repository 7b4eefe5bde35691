// What a mature CLI does without being asked: --version, and a quiet exit when the reader of its output goes away
// (`| head`), instead of an EPIPE stack trace.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli } from './helpers/cli.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;

beforeAll(async () => {
  redis = await startTestRedis();
  // Enough dead letters that a dry run's output outlasts `head -1`.
  const dlq = new Queue('webhook-dlq', { connection: redis.client() });
  const now = Date.now();
  const record = (i: number) => ({
    source: { prefix: 'bull', queue: 'webhook', jobId: String(i), name: 'webhook' },
    data: { url: 'https://example.com/h', event: 'e', payload: i },
    opts: {},
    failedReason: 'receiver answered 500',
    stacktrace: [],
    attemptsMade: 1,
    firstFailedAt: now,
    lastFailedAt: now,
    deadLetteredAt: now,
  });
  for (let i = 0; i < 3000; i += 500)
    await dlq.addBulk(Array.from({ length: 500 }, (_, k) => ({ name: 'webhook', data: record(i + k), opts: { jobId: `${i + k}-${now}` } })));
  await dlq.close();
});

afterAll(async () => {
  await redis?.stop();
});

/** Runs `queuelens <args> | head -1` in bash; returns the CLI's own exit status and what it wrote to stderr. */
function intoHead(args: string[]): { status: number; stderr: string; first: string } {
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync('bash', ['-c', `${quoted} 2>"$ERR" | head -1; echo "status=\${PIPESTATUS[0]}"`], {
    encoding: 'utf8',
    env: { ...process.env, ERR: `/tmp/ql-head-${process.pid}.err` },
    timeout: 60_000,
  });
  const stderr = readFileSync(`/tmp/ql-head-${process.pid}.err`, 'utf8');
  const [first, statusLine] = r.stdout.trim().split('\n');
  return { status: Number(/status=(\d+)/.exec(statusLine ?? '')?.[1]), stderr, first: first ?? '' };
}

describe('the queuelens command', () => {
  it('prints its version with --version and -V', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag]);
      expect(r).toEqual({ code: 0, output: `${version}\n` });
    }
  });

  it.each([
    ['dlq redrive --all --dry-run | head -1', () => ['dlq', 'redrive', 'webhook', '--all', '--dry-run', '--redis-url', redis.url, '--log-level', 'silent']],
    ['top | head -1', () => ['top', '--redis-url', redis.url, '--interval', '1', '--log-level', 'silent']],
  ])('%s ends quietly with 0', (_name, args) => {
    const r = intoHead(args());
    expect(r.first).not.toBe('');
    // (A long redrive's progress bar goes to stderr; an error would too.)
    expect(r.stderr).not.toMatch(/EPIPE|Error|\n\s+at /);
    expect(r.status).toBe(0);
  });
});
