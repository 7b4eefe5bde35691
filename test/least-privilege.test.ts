// The sidecar runs as a Redis ACL user that can only read BullMQ's keys (requirepass on, default user closed
// to it), and BullMQ workers as a user without dangerous commands: collection, worker counts and the event
// reader all work, Redis's ACL LOG records no denial, and the sidecar's user really cannot write a BullMQ key.
// The ACL rules are read from docs/security.md, so the documented rules are the tested ones.
import { Writable } from 'node:stream';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveSidecarConfig } from '../src/config/sidecar-config.js';
import { createLogger } from '../src/log/logger.js';
import { createSidecar } from '../src/sidecar/create-sidecar.js';
import { waitFor } from './helpers/bullmq.js';
import { documentedAcl } from './helpers/documented-acl.js';
import { runCli } from './helpers/cli.js';
import { parsePromText, seriesKey } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startTestRedis({ password: 'admin-secret' });
  const admin = redis.client();
  await admin.call('ACL', 'SETUSER', ...documentedAcl('queuelens-sidecar', 'sidecar-secret'));
  await admin.call('ACL', 'SETUSER', ...documentedAcl('queuelens-workers', 'workers-secret'));
  await admin.call('ACL', 'LOG', 'RESET');
});

afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
  await redis?.stop();
});

describe('least privilege', () => {
  it('the sidecar collects, counts workers and reads events as a read-only ACL user; workers run as theirs', async () => {
    const connection = { host: '127.0.0.1', port: redis.port, username: 'queuelens-workers', password: 'workers-secret', maxRetriesPerRequest: null };
    const queue = new Queue('acl-jobs', { connection });
    closers.push(() => queue.close());

    const lines: string[] = [];
    const config = resolveSidecarConfig({
      redisUrl: `redis://queuelens-sidecar:sidecar-secret@127.0.0.1:${redis.port}`,
      prefixes: 'bull',
      collectInterval: '1',
      discoveryInterval: '1',
      logLevel: 'info',
    });
    const log = createLogger({ level: 'info', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
    const s = await createSidecar(config, log);
    closers.push(() => s.close());
    await queue.add('warm-up', {}); // the queue exists before the sidecar starts, so the reader follows it at once
    await s.start();
    const metrics = async () => parsePromText((await s.app.inject({ url: '/metrics' })).body);
    await waitFor(
      'leader and queue followed',
      async () => {
        const m = await metrics();
        // The reader follows the queue from its stream's end once its lag series is exported: adds before that are not its to count.
        return (
          m.get('bullmq_exporter_leader') === 1 &&
          m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'acl-jobs', state: 'waiting' })) === 1 &&
          m.has(seriesKey('bullmq_exporter_events_lag_seconds', { prefix: 'bull', queue: 'acl-jobs' }))
        );
      },
      30_000,
    );

    // Ground truth: 5 jobs plus the warm-up, 2 of which fail for good.
    const worker = new Worker(
      'acl-jobs',
      async (job) => {
        if (job.data.fail) throw new Error('boom');
      },
      { connection, name: 'acl-worker' },
    );
    worker.on('error', () => undefined);
    closers.push(() => worker.close());
    for (let i = 0; i < 5; i += 1) await queue.add('j', { fail: i < 2 });
    await waitFor(
      'the jobs to finish',
      async () => {
        const c = await queue.getJobCounts('completed', 'failed');
        return c.completed === 4 && c.failed === 2;
      },
      30_000,
    );

    const m = await waitFor(
      'collected and counted',
      async () => {
        const x = await metrics();
        const q = (name: string, extra: Record<string, string> = {}) => x.get(seriesKey(name, { prefix: 'bull', queue: 'acl-jobs', ...extra }));
        return (
          q('bullmq_queue_jobs', { state: 'completed' }) === 4 &&
          q('bullmq_jobs_completed_total') === 4 &&
          q('bullmq_jobs_failed_total') === 2 &&
          q('bullmq_queue_workers') === 1 &&
          x
        );
      },
      30_000,
    );
    expect(m.get('bullmq_exporter_up')).toBe(1);
    expect(m.get('bullmq_exporter_redis_up')).toBe(1);
    expect(m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'acl-jobs', state: 'failed' }))).toBe(2);
    // The warm-up was added before the reader started (it starts at the stream's end); its completion came after.
    expect(m.get(seriesKey('bullmq_jobs_added_total', { prefix: 'bull', queue: 'acl-jobs' }))).toBe(5);

    const admin = redis.client();
    expect(await admin.call('ACL', 'LOG')).toEqual([]);
    expect(lines.join('')).not.toMatch(/NOPERM|no permissions/i);

    // The sidecar's user can read BullMQ's keys and write only its own.
    const asSidecar = new Redis({ port: redis.port, host: '127.0.0.1', username: 'queuelens-sidecar', password: 'sidecar-secret', lazyConnect: true });
    closers.push(async () => asSidecar.disconnect());
    await asSidecar.connect();
    expect(await asSidecar.zcard('bull:acl-jobs:completed')).toBe(4);
    await expect(asSidecar.del('bull:acl-jobs:completed')).rejects.toThrow(/NOPERM/);
    await expect(asSidecar.eval("return redis.call('DEL', KEYS[1])", 1, 'bull:acl-jobs:completed')).rejects.toThrow(/NOPERM/);
    await expect(asSidecar.call('EVAL_RO', "return redis.call('DEL', KEYS[1])", 1, 'bull:acl-jobs:meta')).rejects.toThrow(
      /write command|NOPERM|can't access|no permissions|user executing the script/,
    );
    expect(await asSidecar.zcard('bull:acl-jobs:completed')).toBe(4);
  }, 120_000);

  it("the CLI enqueues and lists dead letters under the workers' rules", async () => {
    const url = `redis://queuelens-workers:workers-secret@127.0.0.1:${redis.port}`;
    const admin = redis.client();
    await admin.call('ACL', 'LOG', 'RESET');
    const enqueue = await runCli(['enqueue', 'email', '--data', '{"template":"welcome","to":"ada@example.com"}', '--log-level', 'silent'], { REDIS_URL: url });
    expect(enqueue.output).not.toMatch(/NOPERM/);
    expect(enqueue.code).toBe(0);
    expect(await admin.llen('bull:email:wait')).toBe(1);
    const list = await runCli(['dlq', 'list', 'email', '--log-level', 'silent'], { REDIS_URL: url });
    expect(list.output).not.toMatch(/NOPERM/);
    expect(list.code).toBe(0);
    expect(await admin.call('ACL', 'LOG')).toEqual([]);
  }, 60_000);
});
