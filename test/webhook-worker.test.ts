// The webhook worker against a real HTTP receiver: signature, delivery id, retries on 5xx, Retry-After,
// permanent 4xx, timeouts and the SSRF guard.
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { webhookDeliveryId, webhookProcessor } from '../src/workers/webhook-processor.js';
import { DEFAULT_TOLERANCE_SECONDS, signWebhook, verifyWebhook } from '../src/workers/webhook-signature.js';
import { waitFor } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';
import { fastRetry, WorkerHarness } from './helpers/workers.js';

const SECRET = 'shared-webhook-secret';
let redis: TestRedis;
let rx: WebhookReceiver;
let h: WorkerHarness;

beforeAll(async () => {
  redis = await startTestRedis();
  rx = await startWebhookReceiver(SECRET);
  h = new WorkerHarness(redis);
  await h.start('webhook', webhookProcessor({ secret: SECRET, timeoutMs: 500, allow: ['127.0.0.1/32'] }).process, { concurrency: 1 });
});

afterAll(async () => {
  await h?.close();
  await rx?.close();
  await redis?.stop();
});

const state = (id: string) => h.queue('webhook').getJobState(id);
const deliveriesFor = (path: string) => rx.deliveries.filter((d) => d.path === path);

describe('webhook worker', () => {
  it('POSTs signed JSON with a delivery id and completes on 2xx', async () => {
    const enqueuedAt = Date.now();
    const job = await h.producer.enqueueWebhook({ url: `${rx.url}/ok`, event: 'order.paid', payload: { order: 42 } });
    await waitFor('completed', async () => (await state(job.id!)) === 'completed');
    const [d] = deliveriesFor('/ok');
    expect(d).toBeDefined();
    expect(d!.signatureValid).toBe(true);
    expect(d!.headers['content-type']).toBe('application/json');
    // The prefix, queue, id and creation time of the job, as Redis holds them.
    const created = Number(await redis.client().hget(`bull:webhook:${job.id}`, 'timestamp'));
    expect(d!.headers['x-queuelens-delivery']).toBe(`bull:webhook:${job.id}:${created}`);
    expect(d!.headers['x-queuelens-event']).toBe('order.paid');
    expect(JSON.parse(d!.body)).toEqual({ id: `bull:webhook:${job.id}:${created}`, event: 'order.paid', payload: { order: 42 } });
    // Signed between the enqueue and now (seconds, the same clock).
    const signedAt = Number(/^t=(\d+),/.exec(String(d!.headers['x-queuelens-signature']))?.[1]);
    expect(signedAt).toBeGreaterThanOrEqual(Math.floor(enqueuedAt / 1000));
    expect(signedAt).toBeLessThanOrEqual(Date.now() / 1000);
  });

  it("delivery ids differ between deployments sharing a receiver and after a queue's ids start over", async () => {
    const connection = { host: '127.0.0.1', port: redis.port };
    const [a, b] = [new Queue('webhook', { connection, prefix: 'deploy-a' }), new Queue('webhook', { connection, prefix: 'deploy-b' })];
    try {
      const data = { url: `${rx.url}/ids`, event: 'e', payload: null };
      const [ja, jb] = [await a.add('webhook', data), await b.add('webhook', data)];
      // Both deployments number their jobs from 1: the id alone would collide.
      expect([ja.id, jb.id]).toEqual(['1', '1']);
      expect(webhookDeliveryId(ja)).not.toBe(webhookDeliveryId(jb));
      // The queue is wiped and its ids start over; the new job 1 is another event.
      await waitFor('a later millisecond', async () => Date.now() > ja.timestamp);
      await a.obliterate({ force: true });
      const again = await a.add('webhook', data);
      expect(again.id).toBe('1');
      expect(webhookDeliveryId(again)).not.toBe(webhookDeliveryId(ja));
      // A redriven job names the original: the same id as the original's own attempts.
      expect(
        webhookDeliveryId(
          { ...again, id: 'redrive-1', prefix: again.prefix, queueName: again.queueName, timestamp: again.timestamp + 5 },
          { originalJobId: '1', originalTimestamp: again.timestamp },
        ),
      ).toBe(webhookDeliveryId(again));
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('signs a timestamp: the same delivery replayed after the tolerance no longer verifies', async () => {
    const job = await h.producer.enqueueWebhook({ url: `${rx.url}/replay`, event: 'order.paid', payload: { order: 7 } });
    await waitFor('completed', async () => (await state(job.id!)) === 'completed');
    const [d] = deliveriesFor('/replay');
    const header = String(d!.headers['x-queuelens-signature']);
    const m = /^t=(\d+),v1=[0-9a-f]{64}$/.exec(header);
    expect(m, header).not.toBeNull();
    const t = Number(m![1]);
    // Judged by the timestamp the sender signed, not the test's clock: within the default 300 s, and not after.
    expect(verifyWebhook(SECRET, d!.body, header, { now: t + DEFAULT_TOLERANCE_SECONDS })).toBe(true);
    expect(verifyWebhook(SECRET, d!.body, header, { now: t + DEFAULT_TOLERANCE_SECONDS + 1 })).toBe(false);
    expect(verifyWebhook(SECRET, d!.body, header, { now: t + 365 * 86_400 })).toBe(false);
    expect(verifyWebhook(SECRET, d!.body, header, { now: t - DEFAULT_TOLERANCE_SECONDS - 1 })).toBe(false);
    expect(verifyWebhook(SECRET, d!.body, header, { now: t + 3600, toleranceSeconds: 3600 })).toBe(true);
    // The timestamp is signed: moving it forward breaks the signature.
    expect(verifyWebhook(SECRET, d!.body, header.replace(`t=${t}`, `t=${t + 1000}`), { now: t + 1000 })).toBe(false);
    expect(verifyWebhook(SECRET, `${d!.body} `, header, { now: t })).toBe(false);
    expect(verifyWebhook(SECRET, d!.body, `${header.split(',')[1]}`, { now: t })).toBe(false);
  });

  it('verifyWebhook refuses an empty or short secret with a clear error, rather than verifying what anyone could sign', () => {
    const body = '{"id":"webhook-1","event":"e","payload":null}';
    const t = 1_700_000_000;
    for (const secret of ['', 'x', '1234567']) {
      // Signed with that same secret: without the check this verifies (an unset WEBHOOK_SECRET on both sides).
      expect(() => verifyWebhook(secret, body, signWebhook(secret, t, body), { now: t }), JSON.stringify(secret)).toThrow(
        /verifyWebhook: the secret is (empty|\d characters); .*at least 8 characters/,
      );
    }
    expect(verifyWebhook('12345678', body, signWebhook('12345678', t, body), { now: t })).toBe(true);
  });

  it("signs with the job's own secret when it has one", async () => {
    const job = await h.producer.enqueueWebhook({ url: `${rx.url}/own`, event: 'e', payload: null, secret: 'per-job-secret-1' });
    await waitFor('completed', async () => (await state(job.id!)) === 'completed');
    const [d] = deliveriesFor('/own');
    expect(d!.signatureValid).toBe(false);
    expect(verifyWebhook('per-job-secret-1', d!.body, String(d!.headers['x-queuelens-signature']))).toBe(true);
  });

  it('retries 5xx with the same delivery id until it succeeds', async () => {
    rx.script({ status: 500 }, { status: 503 });
    const job = await h.producer.enqueueWebhook({ url: `${rx.url}/flaky`, event: 'e', payload: 1 }, fastRetry(5, 'retry-after'));
    await waitFor('completed', async () => (await state(job.id!)) === 'completed');
    const ds = deliveriesFor('/flaky');
    expect(ds.map((d) => d.answered)).toEqual([500, 503, 200]);
    expect(new Set(ds.map((d) => d.headers['x-queuelens-delivery'])).size).toBe(1);
    expect((await h.queue('webhook').getJob(job.id!))!.attemptsMade).toBe(3);
  });

  it('waits as long as Retry-After says on 429', async () => {
    rx.script({ status: 429, headers: { 'retry-after': '1' } });
    const t0 = Date.now();
    const job = await h.producer.enqueueWebhook({ url: `${rx.url}/limited`, event: 'e', payload: 1 }, fastRetry(3, 'retry-after'));
    await waitFor('completed', async () => (await state(job.id!)) === 'completed');
    const [first, second] = deliveriesFor('/limited');
    expect(first!.answered).toBe(429);
    expect(second!.answered).toBe(200);
    // The backoff base is 20 ms; only the header explains a second's gap.
    const job2 = await h.queue('webhook').getJob(job.id!);
    expect(job2!.processedOn! - t0).toBeGreaterThanOrEqual(950);
  });

  it('dead-letters a 4xx at once and after exhausting attempts on 5xx', async () => {
    const bad = await h.producer.enqueueWebhook({ url: `${rx.url}/gone?status=400`, event: 'e', payload: 1 }, fastRetry(5, 'retry-after'));
    const down = await h.producer.enqueueWebhook({ url: `${rx.url}/down?status=500`, event: 'e', payload: 1 }, fastRetry(2, 'retry-after'));
    const dlq = await waitFor('two dead letters', async () => {
      const jobs = await h.dlqJobs('webhook');
      const a = jobs.find((j) => j.data.source.jobId === bad.id);
      const b = jobs.find((j) => j.data.source.jobId === down.id);
      return a && b ? { a, b } : undefined;
    });
    expect(deliveriesFor('/gone')).toHaveLength(1);
    expect(dlq.a.data).toMatchObject({ attemptsMade: 1, failedReason: 'webhook receiver answered 400' });
    expect(deliveriesFor('/down')).toHaveLength(2);
    expect(dlq.b.data).toMatchObject({ attemptsMade: 2, failedReason: 'webhook receiver answered 500' });
  });

  it('retries a delivery that times out', async () => {
    rx.script({ status: 200, delayMs: 1500 });
    const job = await h.producer.enqueueWebhook({ url: `${rx.url}/slow`, event: 'e', payload: 1 }, fastRetry(3, 'retry-after'));
    await waitFor('completed', async () => (await state(job.id!)) === 'completed');
    const failed = await h.queue('webhook').getJob(job.id!);
    expect(failed!.attemptsMade).toBe(2);
    expect(failed!.stacktrace?.[0]).toMatch(/timed out after 500 ms/);
  });

  it('refuses loopback, private and link-local targets that are not allow-listed', async () => {
    const guarded = webhookProcessor({ secret: SECRET, timeoutMs: 500 });
    const before = rx.deliveries.length;
    const port = new URL(rx.url).port;
    for (const url of [
      `http://127.0.0.1:${port}/x`,
      `http://localhost:${port}/x`,
      'http://169.254.169.254/latest/meta-data',
      'http://10.1.2.3/x',
      'http://[::1]:1/x',
      `http://[::7f00:1]:${port}/x`,
      'http://[::a9fe:a9fe]/latest',
      'http://[::ffff:127.0.0.1]:1/x',
      'http://[::]:1/x',
    ]) {
      const err = await guarded
        .process({ id: '1', queueName: 'webhook' } as never, { url, event: 'e', payload: 1 }, { log: h.log, trace: ROOT_CONTEXT })
        .catch((e: Error) => e);
      expect(err, url).toBeInstanceOf(Error);
      expect((err as Error).name, url).toBe('UnrecoverableError');
      expect((err as Error).message, url).toMatch(/--webhook-allow/);
    }
    expect(rx.deliveries.length).toBe(before);
    // An allow-listed host name passes even though it resolves to loopback.
    const byName = webhookProcessor({ secret: SECRET, timeoutMs: 500, allow: ['localhost'] });
    await expect(
      byName.process(
        { id: '2', queueName: 'webhook' } as never,
        { url: `http://localhost:${port}/named`, event: 'e', payload: 1 },
        { log: h.log, trace: ROOT_CONTEXT },
      ),
    ).resolves.toMatchObject({ status: 200 });
  });

  it('keeps secrets out of the logs', () => {
    const all = h.logLines.join('');
    expect(all).not.toContain('per-job-secret-1');
    expect(all).not.toContain(SECRET);
  });
});
