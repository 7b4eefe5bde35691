// Read-only commands never write: the whole keyspace (every key and its content) is the same before and after
// `dlq list|show`, every dry run, `top` straight from Redis; a sidecar writes only under its own prefix.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { webhookProcessor } from '../src/workers/webhook-processor.js';
import { waitFor } from './helpers/bullmq.js';
import { runCli } from './helpers/cli.js';
import { keyspace } from './helpers/keyspace.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { startSidecarProcess } from './helpers/sidecar-process.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';
import { fastRetry, WorkerHarness } from './helpers/workers.js';

let redis: TestRedis;
let r: Redis;
let rx: WebhookReceiver;
let dlqId: string;
let sourceId: string;

beforeAll(async () => {
  redis = await startTestRedis();
  r = redis.client();
  rx = await startWebhookReceiver('ro-secret');
  const h = new WorkerHarness(redis);
  await h.start('webhook', webhookProcessor({ secret: 'ro-secret', timeoutMs: 1000, allow: ['127.0.0.1'] }).process, { concurrency: 1 });
  rx.script({ status: 500 });
  const job = await h.producer.enqueueWebhook({ url: `${rx.url}/ro`, event: 'ro', payload: 1, secret: 'job-secret-ro' }, fastRetry(1, 'retry-after'));
  const dl = await waitFor('dead letter', async () => (await h.dlqJobs('webhook')).find((j) => j.data.source.jobId === job.id));
  dlqId = String(dl.id);
  sourceId = String(job.id);
  // Waiting and (far) delayed jobs too, so collectors and `top` have every state to read.
  await h.producer.enqueueEmail({ template: 'welcome', to: 'w@example.com' });
  await h.producer.enqueueEmail({ template: 'welcome', to: 'd@example.com' }, { delay: 3_600_000 });
  await h.close(); // no worker left to heartbeat or move jobs while the keyspace is compared
  // The closed worker's stalled-check marker expires on its own (after 30 s, mid-suite on a loaded machine): that is
  // no write by a command under test, so it goes now, and nothing else in the keyspace may expire by itself.
  for (const key of await r.keys('bull:*:stalled-check')) await r.del(key);
  const volatile = [];
  for (const key of await r.keys('*')) if ((await r.pttl(key)) >= 0) volatile.push(key);
  expect(volatile, 'keys that would expire while the keyspace is compared').toEqual([]);
});

// A producer of the user's keeps its own stream retention: a Queue object that updates meta would overwrite it.
beforeEach(async () => {
  for (const q of ['webhook', 'webhook-dlq', 'email']) await r.hset(`bull:${q}:meta`, 'opts.maxLenEvents', '5000');
});

afterAll(async () => {
  await rx?.close();
  await redis?.stop();
});

/** [name, argv, exit code]: a selection that finds nothing exits 1, the rest 0. */
const READ_ONLY: Array<[string, () => string[], number]> = [
  ['dlq list webhook', () => ['dlq', 'list', 'webhook'], 0],
  ['dlq list of a queue that does not exist', () => ['dlq', 'list', 'nosuchqueue'], 0],
  ['dlq show --id <dead-letter id>', () => ['dlq', 'show', 'webhook', '--id', dlqId], 0],
  ['dlq show --id <source job id>', () => ['dlq', 'show', 'webhook', '--id', sourceId], 0],
  ['dlq redrive --dry-run --id <source job id>', () => ['dlq', 'redrive', 'webhook', '--id', sourceId, '--dry-run'], 0],
  ['dlq redrive --dry-run --id <unknown>', () => ['dlq', 'redrive', 'webhook', '--id', 'nope-1', '--dry-run'], 1],
  ['dlq show of a queue that does not exist', () => ['dlq', 'show', 'nosuchqueue2', '--id', '1'], 1],
  ['dlq redrive --all --dry-run', () => ['dlq', 'redrive', 'webhook', '--all', '--dry-run'], 0],
  ['dlq redrive --id --dry-run', () => ['dlq', 'redrive', 'webhook', '--id', dlqId, '--dry-run'], 0],
  ['dlq purge --all --dry-run', () => ['dlq', 'purge', 'webhook', '--all', '--dry-run'], 0],
  ['top --once from Redis', () => ['top', '--once'], 0],
];

describe('read-only commands write nothing', () => {
  it.each(READ_ONLY)('%s', async (_name, args, code) => {
    const before = await keyspace(r);
    const res = await runCli([...args(), '--redis-url', redis.url, '--log-level', 'silent']);
    expect(await keyspace(r)).toEqual(before);
    expect({ code: res.code, output: res.output }).toMatchObject({ code });
    // Dead letters named either way are found.
    if (args()[2] === 'webhook' && args().includes(sourceId)) expect(res.output).toContain(dlqId);
  });

  // A typo'd redrive or purge is refused, not turned into a phantom `<queue>-dlq` (its meta) that top and /metrics show.
  it.each([
    ['purge', 'emial', ['--all'], 'bull'],
    ['purge', 'emial', ['--id', '1'], 'bull'],
    ['redrive', 'wbhook', ['--id', '1'], 'bull'],
    ['redrive', 'wbhook', ['--all'], 'bull'],
    ['redrive', 'nosuchqueue3', ['--all', '--dry-run'], 'bull'],
    ['purge', 'webhook', ['--all', '--prefix', 'other'], 'other'],
  ])('dlq %s %s %j: no such DLQ, nothing written, exit 1', async (action, queue, extra, prefix) => {
    const before = await keyspace(r);
    const res = await runCli(['dlq', action, queue, ...extra, '--redis-url', redis.url, '--log-level', 'silent']);
    expect(await keyspace(r)).toEqual(before);
    expect(res.code).toBe(1);
    expect(res.output).toContain(`no dead-letter queue ${queue}-dlq under prefix "${prefix}"`);
  });

  it('a sidecar (collector and event reader) writes nothing outside its own prefix', async () => {
    const before = await keyspace(r, /^queuelens-ro:/);
    const sidecar = await startSidecarProcess({ redisUrl: redis.url, ownPrefix: 'queuelens-ro' });
    try {
      // The event reader has read the streams and persisted its accounting; several collections ran.
      await waitFor(
        'accounting persisted',
        async () => ((await r.keys('queuelens-ro:*')).length > 1 && (await sidecar.metrics()).has('bullmq_exporter_up') ? true : undefined),
        30_000,
        200,
      );
      await waitFor('dead letters seen', async () => [...(await sidecar.metrics()).keys()].some((k) => k.includes('webhook-dlq')) || undefined, 30_000, 200);
    } finally {
      await sidecar.stop();
    }
    expect(await keyspace(r, /^queuelens-ro:/)).toEqual(before);
  });
});
