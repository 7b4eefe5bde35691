// Hostile requests to the admin surface, through inject() against a real Redis: oversized bodies, path
// traversal and key injection in queue names and ids, and many concurrent redrives of the same dead letters
// (each is redriven once, and exactly one request says so; the others get 409 or not-found, never a 500).
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redriveJobId, type DeadLetterRecord } from '../src/dead-letters/dead-letters.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

const TOKEN = 'admin-token-0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };
let redis: TestRedis;
let raw: Redis;
let dlq: Queue;
let sidecar: Awaited<ReturnType<typeof testSidecar>>;

function record(id: string): DeadLetterRecord {
  const at = Date.now();
  return {
    source: { prefix: 'bull', queue: 'export', jobId: id, name: 'export' },
    data: { format: 'csv', rows: 1, source: 'synthetic' },
    opts: { attempts: 1 },
    failedReason: 'x',
    stacktrace: [],
    attemptsMade: 1,
    firstFailedAt: at,
    lastFailedAt: at,
    deadLetteredAt: at,
  };
}

beforeAll(async () => {
  redis = await startTestRedis();
  raw = redis.client();
  dlq = new Queue('export-dlq', { connection: { host: '127.0.0.1', port: redis.port } });
  sidecar = await testSidecar(redis.url, { adminToken: TOKEN, adminWrites: 'true' });
});
afterAll(async () => {
  await sidecar?.close();
  await dlq?.close();
  await redis?.stop();
});

const redrive = (queue: string, payload: unknown) =>
  sidecar.app.inject({ method: 'POST', url: `/admin/dlq/${queue}/redrive`, headers: auth, payload: payload as object });

describe('admin surface under hostile input', () => {
  it('refuses bodies over 1 MiB with 413, before any work', async () => {
    await dlq.add('export', record('big'), { jobId: 'big' });
    const res = await redrive('export', { ids: ['big'], pad: 'x'.repeat(1.5 * 1024 * 1024) });
    expect(res.statusCode).toBe(413);
    expect(await raw.exists('bull:export-dlq:big')).toBe(1);
    // Without a token, even a huge body is 401 (auth runs before the body is parsed).
    const anon = await sidecar.app.inject({ method: 'POST', url: '/admin/dlq/export/redrive', payload: { pad: 'x'.repeat(1.5 * 1024 * 1024) } });
    expect([401, 413]).toContain(anon.statusCode);
    const garbled = await sidecar.app.inject({
      method: 'POST',
      url: '/admin/dlq/export/redrive',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: '{"ids": [',
    });
    expect(garbled.statusCode).toBe(400);
  });

  it('rejects traversal and key injection in queue names and ids with 400, touching nothing', async () => {
    await raw.set('bull:secret', 'untouched');
    const before = (await raw.keys('*')).sort();
    const queues = ['..%2F..%2Fetc', '..', '%2E%2E', 'a%2Fb', 'a%5Cb', 'x%0Ay', `${'q'.repeat(300)}`, 'bull%3Asecret'];
    for (const q of queues) {
      for (const res of [await sidecar.app.inject({ url: `/admin/dlq/${q}`, headers: auth }), await redrive(q, { all: true })]) {
        // The router answers first for some: 404 where it resolved the dots away (/admin/dlq/.. is /admin/),
        // 414 past its parameter length limit. Everything that reaches the route is a 400.
        expect([400, 404, 414], q).toContain(res.statusCode);
        if (!['..', '%2E%2E', 'q'.repeat(300)].includes(q)) expect(res.statusCode, q).toBe(400);
      }
    }
    const ids = ['../big', '..%2Fbig', 'big/../../secret', 'a:wait', '../../../../etc/passwd', 'x\ny', '', 'i'.repeat(300)];
    for (const id of ids) expect((await redrive('export', { ids: [id] })).statusCode, JSON.stringify(id)).toBe(400);
    expect((await raw.keys('*')).sort()).toEqual(before);
    expect(await raw.get('bull:secret')).toBe('untouched');
  });

  it('concurrent redrives of the same dead letters: each redriven once, one request says so, the rest 409 or not-found', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `race-${i}`);
    for (const id of ids) await dlq.add('export', record(id), { jobId: id });
    const responses = await Promise.all(Array.from({ length: 12 }, (_, k) => redrive('export', k % 2 ? { ids } : { ids: [...ids].reverse() })));
    for (const r of responses) expect([200, 409], r.body).toContain(r.statusCode);
    const outcomes = responses.flatMap((r) => (r.json() as { outcomes: Array<{ dlqJobId: string; status: string }> }).outcomes);
    for (const id of ids) {
      const mine = outcomes.filter((o) => o.dlqJobId === id);
      expect(
        mine.filter((o) => o.status === 'redriven'),
        id,
      ).toHaveLength(1);
      expect(mine.every((o) => ['redriven', 'conflict', 'not-found'].includes(o.status))).toBe(true);
    }
    // In Redis: each dead letter left the DLQ, and the target queue got one job per dead letter, added once.
    for (const id of ids) expect(await raw.exists(`bull:export-dlq:${id}`)).toBe(0);
    expect(await raw.llen('bull:export:wait')).toBe(ids.length);
    for (const id of ids) expect(await raw.exists(`bull:export:${redriveJobId(id)}`)).toBe(1);
    const added = (await raw.xrange('bull:export:events', '-', '+')).filter(([, f]) => f[1] === 'added');
    expect(added).toHaveLength(ids.length);
  });
});
