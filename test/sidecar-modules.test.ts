// What a Redis sidecar process loads: not the PostgreSQL backend's dependencies (pg, BullMQ), which only
// `--backend postgres` and the other subcommands need. Each module loaded is memory the sidecar holds for its life.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { spawnCli } from './helpers/cli.js';
import { parsePromText, seriesKey } from './helpers/prom-text.js';
import { freePort, startTestRedis, type TestRedis } from './helpers/redis-server.js';

const RECORDER = fileURLToPath(new URL('./fixtures/loaded-modules.mjs', import.meta.url));
let redis: TestRedis;

beforeAll(async () => {
  redis = await startTestRedis();
  const bull = new BullFixtures(redis);
  await bull.queue('orders').add('o', { n: 1 });
  await bull.close();
});

afterAll(async () => {
  await redis?.stop();
});

describe('a Redis sidecar process', () => {
  it('exports its queue without loading pg or BullMQ', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'ql-modules-')), 'loaded.txt');
    const port = await freePort();
    const p = spawnCli(['sidecar', '--port', String(port), '--host', '127.0.0.1', '--collect-interval', '0.5', '--shutdown-timeout', '30'], {
      REDIS_URL: redis.url,
      NODE_OPTIONS: `--import ${RECORDER}`,
      LOADED_MODULES_OUT: out,
    });
    try {
      // Up and exporting what Redis holds: every module the sidecar needs to serve has been loaded by then.
      await waitFor(
        'the sidecar exports orders',
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined);
          const m = res?.ok ? parsePromText(await res.text()) : undefined;
          return m?.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'orders', state: 'waiting' })) === 1;
        },
        60_000,
      );
    } finally {
      p.proc.kill('SIGTERM');
    }
    expect((await p.exited).code, p.output()).toBe(0);
    const loaded = readFileSync(out, 'utf8').split('\n');
    // The recorder sees CommonJS modules: ioredis is one, and the sidecar cannot serve without it.
    expect(loaded.some((f) => f.includes('/node_modules/ioredis/'))).toBe(true);
    expect(loaded.filter((f) => /\/node_modules\/(bullmq|pg|pg-pool)\//.test(f))).toEqual([]);
  });
});
