// A final failure whose reply from Redis never reached the worker: Redis moved the job to `failed`, the link broke
// before the answer came back, and ioredis resent the command after reconnecting, which then found no lock. BullMQ
// emits no 'failed' event for it, so the worker's dead-letter copy never ran. It must still reach the dead-letter
// queue within seconds of Redis answering again, not at the next periodic sweep minutes later.
import { UnrecoverableError } from 'bullmq';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { LinkProxy } from './helpers/link-proxy.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { WorkerHarness } from './helpers/workers.js';

let redis: TestRedis;
let proxy: LinkProxy;
let h: WorkerHarness;

beforeAll(async () => {
  redis = await startTestRedis();
  proxy = await LinkProxy.start(redis.port);
  h = new WorkerHarness(redis);
});

afterAll(async () => {
  proxy?.cut();
  await h?.close();
  await proxy?.close();
  await redis?.stop();
});

it('dead-letters a job whose move to failed was done by Redis but never answered', async () => {
  const raw = redis.client();
  await h.start(
    'email',
    async () => {
      // From here on, nothing Redis answers reaches the worker: its move of this job to `failed` included.
      proxy.dropReplies = true;
      throw new UnrecoverableError('permanently refused');
    },
    { redisUrl: `redis://127.0.0.1:${proxy.port}`, concurrency: 1 },
  );
  const job = await h.producer.enqueueEmail({ template: 'welcome', to: 'lost-reply@example.com', vars: { name: 'x' } });
  await waitFor('the job failed in Redis', async () => (await raw.zscore('bull:email:failed', String(job.id))) !== null, 10_000, 20);
  // The job failed for good in Redis, and the worker never heard so.
  expect(await raw.llen('bull:email-dlq:wait')).toBe(0);
  proxy.cut();
  const dead = await waitFor('the dead letter', async () => (await h.dlqJobs('email')).find((j) => j.data.source.jobId === job.id), 10_000);
  expect(dead.data.failedReason).toBe('permanently refused');
  expect(dead.data.attemptsMade).toBe(1);
  // Exactly one copy, and the job still sits in `failed` per retention.
  expect((await h.dlqJobs('email')).length).toBe(1);
  expect(await raw.zscore('bull:email:failed', String(job.id))).not.toBeNull();
});
