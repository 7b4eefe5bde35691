// A `-dlq` queue can hold jobs queuelens did not write (another tool's, or a user's own queue ending in `-dlq`):
// the admin listing and `queuelens dlq list` show them as such, a redrive refuses them as invalid and adds nothing,
// and none of these answers 500 or crashes.
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

const TOKEN = 'admin-token-0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };
let redis: TestRedis;
let sidecar: Awaited<ReturnType<typeof testSidecar>>;

beforeAll(async () => {
  redis = await startTestRedis();
  const dlq = new Queue('email-dlq', { connection: { host: '127.0.0.1', port: redis.port } });
  await dlq.add('foreign', { hello: 'world' }, { jobId: 'foreign-1' });
  await dlq.add('nulled', null, { jobId: 'foreign-2' });
  await dlq.close();
  sidecar = await testSidecar(redis.url, { adminToken: TOKEN, adminWrites: 'true' });
  await sidecar.refresh();
});

afterAll(async () => {
  await sidecar?.close();
  await redis?.stop();
});

describe('jobs in a -dlq queue that queuelens did not write', () => {
  it('are listed as invalid by the admin API, and a redrive refuses them without adding anything', async () => {
    const list = await sidecar.app.inject({ url: '/admin/dlq/email', headers: auth });
    expect(list.statusCode).toBe(200);
    const body = list.json() as { count: number; jobs: Array<{ id: string; invalid?: string }> };
    expect(body.count).toBe(2);
    expect(body.jobs.map((j) => j.id).sort()).toEqual(['foreign-1', 'foreign-2']);
    for (const j of body.jobs) expect(j.invalid).toMatch(/not a dead letter queuelens wrote/);

    const redrive = await sidecar.app.inject({ method: 'POST', url: '/admin/dlq/email/redrive', headers: auth, payload: { all: true } });
    expect(redrive.statusCode).toBe(200);
    expect((redrive.json() as { tally: Record<string, number> }).tally).toEqual({ invalid: 2 });
    // Nothing reached the source queue, and both jobs are still in the DLQ.
    expect(await redis.client().exists('bull:email:wait', 'bull:email:id')).toBe(0);
    expect(await redis.client().llen('bull:email-dlq:wait')).toBe(2);
  });

  it('are listed by `queuelens dlq list`, which exits 0', async () => {
    const { code, output } = await runCli(['dlq', 'list', 'email'], { REDIS_URL: redis.url });
    expect(output).toContain('2 dead-lettered in email-dlq');
    expect(output).toMatch(/foreign-1\tforeign\tnot a dead letter queuelens wrote/);
    expect(output).toMatch(/foreign-2\tnulled\tnot a dead letter queuelens wrote/);
    expect(code).toBe(0);
  });
});
