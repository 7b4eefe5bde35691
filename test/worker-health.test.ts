// Issue 19: workers had no probes. `queuelens worker --health-port` answers /livez while every processing loop
// runs and /readyz while, in addition, Redis is connected; a real worker process against a real Redis that is
// killed and restarted.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { spawnCli, type CliProcess } from './helpers/cli.js';
import { freePort, startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;
let worker: CliProcess;
let port: number;

interface Health {
  ok: boolean;
  queues: Array<{ queue: string; running: boolean; redis: boolean }>;
}
async function probe(path: string): Promise<{ status: number; body: Health }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: (await res.json()) as Health };
}
/** Polls until the probe answers `status` (generous: the worker reconnects with backoff). */
async function until(path: string, status: number): Promise<Health> {
  let last = '';
  for (let i = 0; i < 600; i++) {
    const r = await probe(path).catch((err: Error) => ({ status: 0, body: { ok: false, queues: [], err: err.message } as Health }));
    if (r.status === status) return r.body;
    last = JSON.stringify(r);
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`${path} never answered ${status}; last: ${last}\n${worker.output()}`);
}

beforeAll(async () => {
  redis = await startTestRedis();
  port = await freePort();
  worker = spawnCli(['worker', 'email,webhook', '--health-port', String(port), '--health-host', '127.0.0.1'], {
    REDIS_URL: redis.url,
    SMTP_URL: 'smtp://127.0.0.1:1',
    WEBHOOK_SECRET: 'health-test-secret-0123456789',
    LOG_LEVEL: 'warn',
  });
}, 60_000);
afterAll(async () => {
  redis?.resume();
  worker?.proc.kill('SIGTERM');
  await worker?.exited;
  await redis?.stop();
});

describe('worker health port', () => {
  test("ready and live once every queue's worker runs against a connected Redis", async () => {
    const ready = await until('/readyz', 200);
    expect(ready.queues.map((q) => q.queue).sort()).toEqual(['email', 'webhook']);
    expect(ready.queues.every((q) => q.running && q.redis)).toBe(true);
    expect((await probe('/livez')).status).toBe(200);
  });

  test('not ready while Redis is gone, still live (a restart would not help), ready again when it is back', async () => {
    await until('/readyz', 200);
    await redis.kill();
    const down = await until('/readyz', 503);
    expect(down.queues.some((q) => !q.redis)).toBe(true);
    const live = await probe('/livez');
    expect(live.status).toBe(200);
    expect(live.body.queues.every((q) => q.running)).toBe(true);
    await redis.restart();
    await until('/readyz', 200);
  });

  // A hung Redis (SIGSTOP: connections stay open, nothing answers) keeps ioredis 'ready'; only a PING with a
  // deadline tells. The worker is live throughout, and ready again once Redis answers.
  test('not ready while Redis hangs, still live, ready again after SIGCONT', async () => {
    await until('/readyz', 200);
    redis.pause();
    try {
      const hung = await until('/readyz', 503);
      expect(hung.queues.every((q) => q.running && !q.redis)).toBe(true);
      expect((await probe('/livez')).status).toBe(200);
    } finally {
      redis.resume();
    }
    const back = await until('/readyz', 200);
    expect(back.queues.every((q) => q.running && q.redis)).toBe(true);
  });

  test('unknown paths answer 404', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(404);
  });
});
