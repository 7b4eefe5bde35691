// The producer API: validation before anything reaches Redis, per-queue defaults, stream retention,
// idempotency keys.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idempotentJobId, Producer } from '../src/jobs/producer.js';
import { EVENTS_MAX_LEN, jobDefaults } from '../src/jobs/queue-defaults.js';
import { JobValidationError } from '../src/jobs/schemas.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;
let producer: Producer;

beforeAll(async () => {
  redis = await startTestRedis();
  producer = new Producer({ redisUrl: redis.url });
});

afterAll(async () => {
  await producer?.close();
  await redis?.stop();
});

async function rejects(p: Promise<unknown>): Promise<JobValidationError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(JobValidationError);
  return err as JobValidationError;
}

describe('producer', () => {
  it('rejects bad input at once, naming the field, and writes nothing', async () => {
    const r = redis.client();
    expect((await rejects(producer.enqueueEmail({ template: 'welcome', to: 'not-an-address' }))).field).toBe('to');
    expect((await rejects(producer.enqueueEmail({ template: 'nope' as 'welcome', to: 'a@example.com' }))).field).toBe('template');
    expect((await rejects(producer.enqueueWebhook({ url: 'ftp://example.com/x', event: 'e', payload: {} }))).field).toBe('url');
    expect((await rejects(producer.enqueueExport({ format: 'csv', rows: -1 }))).field).toBe('rows');
    const e = await rejects(producer.enqueueExport({ format: 'csv', rows: 1, fileName: '../etc/passwd' }));
    expect(e.field).toBe('fileName');
    expect(e.message).not.toContain('passwd');
    expect(await r.keys('bull:*')).toEqual([]);
  });

  it('applies the queue defaults, allows per-job overrides and keeps a long events stream', async () => {
    const job = await producer.enqueueEmail({ template: 'welcome', to: 'a@example.com' });
    expect(job.name).toBe('welcome');
    expect(job.opts).toMatchObject(jobDefaults.email);
    const custom = await producer.enqueueWebhook({ url: 'https://example.com/h', event: 'x', payload: 1 }, { attempts: 2, removeOnFail: true });
    expect(custom.opts.attempts).toBe(2);
    expect(custom.opts.removeOnFail).toBe(true);
    expect(custom.opts.backoff).toEqual(jobDefaults.webhook.backoff);
    const r = redis.client();
    expect(await r.hget('bull:email:meta', 'opts.maxLenEvents')).toBe(String(EVENTS_MAX_LEN));
    expect(await r.hget('bull:webhook:meta', 'opts.maxLenEvents')).toBe(String(EVENTS_MAX_LEN));
    // Defaults filled in by the schema are what is stored.
    expect(JSON.parse((await r.hget(`bull:email:${job.id}`, 'data'))!)).toEqual({ template: 'welcome', to: 'a@example.com', vars: {} });
  });

  it('turns an idempotency key into one deterministic job id', async () => {
    const r = redis.client();
    const before = await r.llen('bull:export:wait');
    const a = await producer.enqueueExport({ format: 'csv', rows: 10 }, { idempotencyKey: 'order-42' });
    const b = await producer.enqueueExport({ format: 'csv', rows: 10 }, { idempotencyKey: 'order-42' });
    const c = await producer.enqueueExport({ format: 'csv', rows: 10 }, { idempotencyKey: 'order-43' });
    expect(a.id).toBe(idempotentJobId('order-42'));
    expect(b.id).toBe(a.id);
    expect(c.id).not.toBe(a.id);
    expect(await r.llen('bull:export:wait')).toBe(before + 2);
  });
});
