// Two redrives of one dead letter, the first paused past its claim: it must not re-add a job the second one already
// redrove (and that was processed and removed since), or the receiver gets the same webhook twice.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { OWN_PREFIX_DEFAULT, ownKeys } from '../src/redis/keys.js';
import { DeadLetters, redriveJobId } from '../src/dead-letters/dead-letters.js';
import { webhookProcessor } from '../src/workers/webhook-processor.js';
import { waitFor } from './helpers/bullmq.js';
import { LinkProxy } from './helpers/link-proxy.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';
import { fastRetry, WorkerHarness } from './helpers/workers.js';

const SECRET = 'race-test-secret';
let redis: TestRedis;
let rx: WebhookReceiver;
let h: WorkerHarness;
let proxy: LinkProxy;

beforeAll(async () => {
  redis = await startTestRedis();
  rx = await startWebhookReceiver(SECRET);
  proxy = await LinkProxy.start(redis.port);
  h = new WorkerHarness(redis);
  await h.start('webhook', webhookProcessor({ secret: SECRET, timeoutMs: 1000, allow: ['127.0.0.1'] }).process, { concurrency: 1 });
});

afterAll(async () => {
  await h?.close();
  await proxy?.close();
  await rx?.close();
  await redis?.stop();
});

it('a redrive paused past its claim adds nothing once another redrive took over: one delivery, not two', async () => {
  rx.script({ status: 500 });
  const job = await h.producer.enqueueWebhook({ url: `${rx.url}/race`, event: 'race', payload: 1, secret: 'race-job-secret' }, fastRetry(1));
  const dl = await waitFor('dead letter', async () => (await h.dlqJobs('webhook')).find((j) => j.data.source.jobId === job.id));
  const dlqId = String(dl.id);
  const newId = redriveJobId(dlqId);
  const deliveries = () => rx.deliveries.filter((d) => d.path === '/race');
  expect(deliveries()).toHaveLength(1);

  // Redrive A talks to Redis through the proxy, which holds A's re-add (the first command naming the new job id).
  const slowConn = new Redis({ host: '127.0.0.1', port: proxy.port, maxRetriesPerRequest: null });
  const slow = new DeadLetters({ connection: slowConn, prefix: 'bull', ownPrefix: OWN_PREFIX_DEFAULT, queue: 'webhook', redriveClaimMs: 300 });
  const slowTarget = new Queue('webhook', { connection: slowConn, skipMetasUpdate: true });
  const fast = new DeadLetters({ connection: redis.client(), prefix: 'bull', ownPrefix: OWN_PREFIX_DEFAULT, queue: 'webhook' });
  const claim = ownKeys.redriveClaim(OWN_PREFIX_DEFAULT, { prefix: 'bull', name: 'webhook' }, dlqId);
  try {
    proxy.holdFrom(newId);
    const a = slow.redrive(slowTarget, dl);
    await waitFor('A paused at its re-add', () => proxy.held > 0, 20_000);
    // A's claim runs out while it is paused; B redrives, the job is delivered and, as retention does, removed.
    await waitFor("A's claim ran out", async () => (await redis.client().exists(claim)) === 0, 30_000);
    expect(await fast.redrive(h.queue('webhook'), dl)).toMatchObject({ status: 'redriven', newJobId: newId });
    await waitFor('redriven job completed', async () => (await h.queue('webhook').getJobState(newId)) === 'completed');
    expect(deliveries()).toHaveLength(2);
    await h.queue('webhook').remove(newId);

    proxy.release();
    const outcome = await a;
    expect(outcome).toMatchObject({ dlqJobId: dlqId, status: 'conflict' });
    // Nothing was added: the redriven job is not back, so it cannot be delivered a second time.
    expect(await h.queue('webhook').getJob(newId)).toBeUndefined();
    expect(await redis.client().exists(`bull:webhook:${newId}`)).toBe(0);
    expect(await h.queue('webhook-dlq').getJob(dlqId)).toBeUndefined();
    expect(await redis.client().exists(ownKeys.redriven(OWN_PREFIX_DEFAULT, { prefix: 'bull', name: 'webhook' }, dlqId))).toBe(0);
    expect(deliveries()).toHaveLength(2);
  } finally {
    proxy.release();
    await Promise.all([slow.close(), fast.close(), slowTarget.close()]);
    slowConn.disconnect();
  }
});

it('a redrive that stopped after committing its re-add is finished by the next one, which adds nothing', async () => {
  rx.script({ status: 500 });
  const job = await h.producer.enqueueWebhook({ url: `${rx.url}/resume`, event: 'resume', payload: 2 }, fastRetry(1));
  const dl = await waitFor('dead letter', async () => (await h.dlqJobs('webhook')).find((j) => j.data.source.jobId === job.id));
  const dlqId = String(dl.id);
  const newId = redriveJobId(dlqId);
  // The state a crash right after the committed re-add leaves: the job added (and since processed and removed), the
  // dead letter still there, marked redriven.
  await redis.client().set(ownKeys.redriven(OWN_PREFIX_DEFAULT, { prefix: 'bull', name: 'webhook' }, dlqId), newId);
  const dead = new DeadLetters({ connection: redis.client(), prefix: 'bull', ownPrefix: OWN_PREFIX_DEFAULT, queue: 'webhook' });
  try {
    expect(await dead.redrive(h.queue('webhook'), dl)).toMatchObject({ status: 'redriven', newJobId: newId });
    expect(await redis.client().exists(`bull:webhook:${newId}`)).toBe(0);
    expect(await h.queue('webhook-dlq').getJob(dlqId)).toBeUndefined();
    expect(await dead.redrive(h.queue('webhook'), dl)).toMatchObject({ status: 'not-found' });
  } finally {
    await dead.close();
  }
});
