// Every producer path keeps the queue's documented retries when the caller leaves an option unset: an `undefined`
// option (an unset CLI flag passed on as `attempts: cfg.attempts`) must not overwrite the queue default.
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Producer } from '../src/jobs/producer.js';
import { jobDefaults } from '../src/jobs/queue-defaults.js';
import { waitFor } from './helpers/bullmq.js';
import { runCli, spawnCli } from './helpers/cli.js';
import { freePort, startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;

beforeAll(async () => {
  redis = await startTestRedis();
});

afterAll(async () => {
  await redis?.stop();
});

describe('queue defaults on every producer path', () => {
  it('the producer API ignores options present but undefined', async () => {
    const producer = new Producer({ redisUrl: redis.url, prefix: 'api' });
    try {
      const unset = { attempts: undefined, backoff: undefined, delay: undefined, removeOnFail: undefined };
      const email = await producer.enqueue('email', { template: 'welcome', to: 'a@example.com' }, unset);
      const webhook = await producer.enqueue('webhook', { url: 'https://example.com/h', event: 'x', payload: 1 }, unset);
      const exp = await producer.enqueue('export', { format: 'csv', rows: 10 }, unset);
      const q = (name: string) => new Queue(name, { connection: redis.client(), prefix: 'api', skipMetasUpdate: true });
      // What Redis holds, not what the Job object says.
      for (const [job, queue] of [
        [email, 'email'],
        [webhook, 'webhook'],
        [exp, 'export'],
      ] as const) {
        const stored = await q(queue).getJob(String(job.id));
        expect(stored!.opts.attempts).toBe(jobDefaults[queue].attempts);
        expect(stored!.opts.backoff).toEqual(jobDefaults[queue].backoff);
      }
    } finally {
      await producer.close();
    }
  });

  it('a job enqueued with the CLI without --attempts gets the documented retries from a real worker', async () => {
    const refused = await freePort(); // nothing listens: every SMTP connection is refused
    const enqueue = await runCli(['enqueue', 'email', '--data', '{"template":"welcome","to":"ada@example.com"}'], { REDIS_URL: redis.url });
    expect(enqueue.code).toBe(0);
    const { id } = JSON.parse(enqueue.output.trim().split('\n').pop()!) as { id: string };
    const r = redis.client();
    expect(JSON.parse((await r.hget(`bull:email:${id}`, 'opts'))!).attempts).toBe(jobDefaults.email.attempts);

    const worker = spawnCli(['worker', 'email'], { REDIS_URL: redis.url, SMTP_URL: `smtp://127.0.0.1:${refused}`, LOG_LEVEL: 'info' });
    try {
      // Two attempts made (the first retry happened) and the job is still scheduled for another: not dead-lettered.
      await waitFor('second attempt', async () => Number(await r.hget(`bull:email:${id}`, 'atm')) >= 2, 60_000, 100);
      expect(await r.zscore('bull:email:failed', id)).toBeNull();
      expect(await r.exists('bull:email-dlq:wait')).toBe(0);
    } finally {
      worker.proc.kill('SIGTERM');
      await worker.exited;
    }
  });
});
