// Dead-letter queues end to end: what a dead letter carries, idempotent copies, the crash-recovery sweep,
// and the `queuelens dlq` commands (list, show, redrive with idempotency, purge, dry runs, selections).
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { redriveJobId } from '../src/dead-letters/dead-letters.js';
import { verifyWebhook } from '../src/workers/webhook-signature.js';
import { webhookProcessor } from '../src/workers/webhook-processor.js';
import { waitFor } from './helpers/bullmq.js';
import { bulkWebhookDeadLetters } from './helpers/dead-letter-fixtures.js';
import { runCli } from './helpers/cli.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';
import { fastRetry, WorkerHarness } from './helpers/workers.js';

const SECRET = 'dlq-test-secret';
const JOB_SECRET = 'job-secret-xyz';
const SECRETS_KEY = 'queuelens:dlq-secrets:bull:webhook';
const DONE_KEY = 'queuelens:dlq-done:bull:webhook';
let redis: TestRedis;
let rx: WebhookReceiver;
let h: WorkerHarness;

beforeAll(async () => {
  redis = await startTestRedis();
  rx = await startWebhookReceiver(SECRET);
  h = new WorkerHarness(redis);
  await h.start('webhook', webhookProcessor({ secret: SECRET, timeoutMs: 1000, allow: ['127.0.0.1'] }).process, { concurrency: 1 });
});

afterAll(async () => {
  await h?.close();
  await rx?.close();
  await redis?.stop();
});

const cli = (...args: string[]) => runCli([...args, '--redis-url', redis.url, '--log-level', 'silent']);

async function deadLetter(path: string, attempts = 2) {
  rx.script(...Array.from({ length: attempts }, () => ({ status: 500 })));
  const job = await h.producer.enqueueWebhook(
    { url: `${rx.url}${path}`, event: 'dlq.test', payload: { path }, secret: JOB_SECRET },
    fastRetry(attempts, 'retry-after'),
  );
  const dl = await waitFor('dead letter', async () => (await h.dlqJobs('webhook')).find((j) => j.data.source.jobId === job.id));
  return { job, dl };
}

/** Like deadLetter, with every delivery answered 500 by the URL itself: no scripted reply a late delivery could take. */
async function deadLetterAlways500(path: string) {
  const job = await h.producer.enqueueWebhook({ url: `${rx.url}${path}?status=500`, event: 'dlq.test', payload: { path } }, fastRetry(2, 'retry-after'));
  const dl = await waitFor('dead letter', async () => (await h.dlqJobs('webhook')).find((j) => j.data.source.jobId === job.id));
  return { job, dl };
}

describe('dead-letter queue', () => {
  it('carries name, data, options, reason, stack, attempts, failure times; the original stays failed', async () => {
    const t0 = Date.now();
    const { job, dl } = await deadLetter('/carry');
    expect(dl.name).toBe('webhook');
    expect(dl.data.source).toEqual({ prefix: 'bull', queue: 'webhook', jobId: job.id, name: 'webhook', timestamp: job.timestamp });
    // The per-job secret is held outside the copy: Bull Board and anyone reading the DLQ job see no trace of it.
    expect(dl.data.data).toEqual({ url: `${rx.url}/carry`, event: 'dlq.test', payload: { path: '/carry' } });
    expect(dl.data.heldSecrets).toEqual(['secret']);
    expect(JSON.stringify(await redis.client().hgetall(`bull:webhook-dlq:${dl.id}`))).not.toContain(JOB_SECRET);
    expect(await redis.client().hget(SECRETS_KEY, String(dl.id))).toBe(JSON.stringify({ secret: JOB_SECRET }));
    expect(dl.data.opts).toMatchObject({ attempts: 2, backoff: { type: 'retry-after', delay: 20 } });
    expect(dl.data.failedReason).toBe('webhook receiver answered 500');
    expect(dl.data.stacktrace).toHaveLength(2);
    expect(dl.data.attemptsMade).toBe(2);
    expect(dl.data.firstFailedAt).toBeGreaterThanOrEqual(t0);
    expect(dl.data.lastFailedAt).toBeGreaterThan(dl.data.firstFailedAt);
    expect(dl.data.deadLetteredAt).toBeGreaterThanOrEqual(dl.data.lastFailedAt);
    expect(await h.queue('webhook').getJobState(job.id!)).toBe('failed');
  });

  it('copies idempotently: copying the same failure again adds nothing', async () => {
    const { job } = await deadLetter('/twice');
    const before = await h.queue('webhook-dlq').getWaitingCount();
    const failed = (await h.queue('webhook').getJob(job.id!))!;
    const worker = (h as unknown as { workers: Array<{ deadLetters: { copy(j: unknown): Promise<string> } }> }).workers[0]!;
    await worker.deadLetters.copy(failed);
    expect(await h.queue('webhook-dlq').getWaitingCount()).toBe(before);
  });

  it('sweeps failures a crashed worker never copied, exactly once', async () => {
    // The managed worker stops; a plain BullMQ worker fails the job for good and copies nothing: the state a
    // crash between BullMQ's moveToFailed and our copy leaves behind.
    await h.close();
    h = new WorkerHarness(redis);
    const conn = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
    const raw = new Queue('webhook', { connection: conn, skipMetasUpdate: true });
    const orphan = await raw.add('webhook', { url: `${rx.url}/orphan`, event: 'e', payload: 1 }, { attempts: 1 });
    const crashing = new Worker(
      'webhook',
      async () => {
        throw new Error('worker crashed before copying');
      },
      { connection: conn },
    );
    await waitFor('orphan failed', async () => (await raw.getJobState(orphan.id!)) === 'failed');
    await crashing.close();
    expect((await h.dlqJobs('webhook')).some((j) => j.data.source.jobId === orphan.id)).toBe(false);
    const before = await h.queue('webhook-dlq').getWaitingCount();
    const w = await h.start('webhook', webhookProcessor({ secret: SECRET, timeoutMs: 1000, allow: ['127.0.0.1'] }).process, {
      concurrency: 1,
      sweepIntervalMs: 200,
    });
    expect((await h.dlqJobs('webhook')).filter((j) => j.data.source.jobId === orphan.id)).toHaveLength(1);
    expect(await h.queue('webhook-dlq').getWaitingCount()).toBe(before + 1);
    expect(await w.deadLetters.sweep()).toBe(0);
    expect(await h.queue('webhook-dlq').getWaitingCount()).toBe(before + 1);

    // While it runs, the periodic sweep repairs a failure another (crashed) worker left behind.
    await w.worker.pause();
    const late = await raw.add('webhook', { url: `${rx.url}/orphan2`, event: 'e', payload: 2 }, { attempts: 1 });
    const manual = new Worker('webhook', null, { connection: conn });
    const taken = await manual.getNextJob('manual-token');
    expect(taken?.id).toBe(late.id);
    await taken!.moveToFailed(new Error('crashed before copying'), 'manual-token');
    await manual.close();
    await waitFor('periodic sweep copy', async () => (await h.dlqJobs('webhook')).some((j) => j.data.source.jobId === late.id), 30_000);
    w.worker.resume();
    await raw.close();
  });

  it('lists and shows dead letters with secrets and addresses masked', async () => {
    const { dl } = await deadLetter('/show');
    const list = await cli('dlq', 'list', 'webhook');
    expect(list.code).toBe(0);
    expect(list.output).toMatch(/^\d+ dead-lettered in webhook-dlq/);
    expect(list.output).toContain(String(dl.id));
    const show = await cli('dlq', 'show', 'webhook', '--id', String(dl.id));
    expect(show.code).toBe(0);
    const shown = JSON.parse(show.output) as { data: { secret?: string; url: string }; attemptsMade: number; heldSecrets: string[] };
    expect(shown.attemptsMade).toBe(2);
    expect(shown.data.secret).toBeUndefined();
    expect(shown.heldSecrets).toEqual(['secret']);
    expect(show.output).not.toContain('job-secret-xyz');
  });

  it('redrives to the original queue with fresh attempts and a link, once', async () => {
    const { job, dl } = await deadLetter('/redrive');
    const dry = await cli('dlq', 'redrive', 'webhook', '--id', String(dl.id), '--dry-run');
    expect(dry.output).toContain('would-redrive');
    expect(await h.queue('webhook-dlq').getJob(String(dl.id))).toBeDefined();

    const res = await cli('dlq', 'redrive', 'webhook', '--id', String(dl.id));
    expect(res.code).toBe(0);
    expect(res.output).toContain('"redriven":1');
    const newId = redriveJobId(String(dl.id));
    await waitFor('redriven job completed', async () => (await h.queue('webhook').getJobState(newId)) === 'completed');
    const redriven = (await h.queue('webhook').getJob(newId))!;
    expect(redriven.attemptsMade).toBe(1);
    expect(redriven.opts.attempts).toBe(2);
    expect(redriven.data).toMatchObject({
      url: `${rx.url}/redrive`,
      redrivenFrom: { queue: 'webhook-dlq', dlqJobId: String(dl.id), originalJobId: job.id, originalTimestamp: job.timestamp },
    });
    const deliveries = rx.deliveries.filter((d) => d.path === '/redrive');
    expect(deliveries.map((d) => d.answered)).toEqual([500, 500, 200]);
    // Signed with the job's own secret, as the original attempts were, not the worker's fallback.
    for (const d of deliveries) {
      const sig = String(d.headers['x-queuelens-signature']);
      expect(verifyWebhook(JOB_SECRET, d.body, sig)).toBe(true);
      expect(verifyWebhook(SECRET, d.body, sig)).toBe(false);
    }
    // One delivery id for the original attempts and the redriven ones, so the receiver can tell it is the same event.
    // Prefix, queue, id and creation time of the original job, though the redriven one has another id and time.
    const original = `bull:webhook:${job.id}:${job.timestamp}`;
    expect(redriven.timestamp).not.toBe(job.timestamp);
    expect(deliveries.map((d) => d.headers['x-queuelens-delivery'])).toEqual([1, 2, 3].map(() => original));
    expect(new Set(deliveries.map((d) => (JSON.parse(d.body) as { id: string }).id))).toEqual(new Set([original]));
    expect(redriven.data).not.toHaveProperty('redrivenFrom.secret');
    expect(await h.queue('webhook-dlq').getJob(String(dl.id))).toBeUndefined();
    expect(await redis.client().hexists(SECRETS_KEY, String(dl.id))).toBe(0);

    const again = await cli('dlq', 'redrive', 'webhook', '--id', String(dl.id));
    expect(again.output).toContain('not-found');
    await new Promise((r) => setTimeout(r, 200));
    expect(rx.deliveries.filter((d) => d.path === '/redrive')).toHaveLength(3);
  });

  it('refuses to redrive a dead letter whose held secret is gone, rather than sign with the wrong key', async () => {
    const { dl } = await deadLetter('/no-secret');
    await redis.client().hdel(SECRETS_KEY, String(dl.id));
    const res = await cli('dlq', 'redrive', 'webhook', '--id', String(dl.id));
    expect(res.output).toContain(`${dl.id}\tinvalid\tits secret is missing`);
    expect(await h.queue('webhook-dlq').getJob(String(dl.id))).toBeDefined();
    expect(await h.queue('webhook').getJob(redriveJobId(String(dl.id)))).toBeUndefined();
  });

  it('redrive interrupted after the add is idempotent when repeated', async () => {
    const { dl } = await deadLetter('/interrupted');
    const worker = (h as unknown as { workers: Array<{ deadLetters: import('../src/dead-letters/dead-letters.js').DeadLetters }> }).workers[0]!;
    const target = h.producer.queue('webhook');
    // Jobs move between states while the worker runs them; the total only grows if a second job is added.
    const count = async () =>
      Object.values(await h.queue('webhook').getJobCounts('wait', 'active', 'completed', 'delayed', 'failed')).reduce((a, b) => a + b, 0);
    // Same DLQ job object twice: the second add hits the same deterministic id.
    const first = await worker.deadLetters.redrive(target, dl);
    const after = await count();
    // The interruption: the first redrive's remove from the DLQ never happened.
    await h.queue('webhook-dlq').add(dl.name, dl.data, { jobId: String(dl.id) });
    await expect(worker.deadLetters.redrive(target, dl)).resolves.toMatchObject({ newJobId: first.newJobId });
    expect(await count()).toEqual(after);
  });

  it('a purged dead letter stays purged however long its failed job is kept; the marker goes with the failed job', async () => {
    const { job, dl } = await deadLetterAlways500('/purged-long-ago');
    const worker = (h as unknown as { workers: Array<{ deadLetters: import('../src/dead-letters/dead-letters.js').DeadLetters }> }).workers[0]!;
    expect((await cli('dlq', 'purge', 'webhook', '--id', String(dl.id))).output).toContain('purged 1');
    // The job failed 31 days ago and the failed-job retention still keeps it (BullMQ's removeOnFail allows any age).
    const longAgo = Number((await redis.client().time())[0]) * 1000 - 31 * 86_400_000;
    await redis.client().hset(`bull:webhook:${job.id}`, 'finishedOn', String(longAgo));
    await redis.client().zadd(DONE_KEY, 'XX', longAgo, job.id!);
    const copies = async () => (await h.dlqJobs('webhook')).filter((j) => j.data.source.jobId === job.id).length;
    // Two sweeps: the first used to drop the 30-day-old marker, the second to copy the job again.
    await worker.deadLetters.sweep();
    await worker.deadLetters.sweep();
    expect(await copies()).toBe(0);
    expect(await redis.client().zscore(DONE_KEY, job.id!)).not.toBeNull();
    // Once retention removes the failed job, its marker goes at the next sweep: the set stays as small as the failed set.
    await h.queue('webhook').remove(job.id!);
    await worker.deadLetters.sweep();
    expect(await redis.client().zscore(DONE_KEY, job.id!)).toBeNull();
    expect(await copies()).toBe(0);
  });

  it('--since finds the dead letters of a worker whose clock runs hours behind (dead letters carry Redis time)', async () => {
    const { job, dl } = await deadLetterAlways500('/skewed');
    const worker = (h as unknown as { workers: Array<{ deadLetters: import('../src/dead-letters/dead-letters.js').DeadLetters }> }).workers[0]!;
    await worker.deadLetters.purge([dl]);
    const failed = (await h.queue('webhook').getJob(job.id!))!;
    // Copied again by a worker whose clock is 3 hours slow.
    const realNow = Date.now.bind(Date);
    const redisMs = async () => {
      const [sec, usec] = await redis.client().time();
      return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    };
    const before = await redisMs();
    const skew = vi.spyOn(Date, 'now').mockImplementation(() => realNow() - 3 * 3600_000);
    let id: string;
    try {
      id = await worker.deadLetters.copy(failed);
    } finally {
      skew.mockRestore();
    }
    const after = await redisMs();
    const copy = (await h.queue('webhook-dlq').getJob(id))!;
    // On Redis's clock, between the two readings around the copy (however long the copy took).
    expect(copy.data.deadLetteredAt).toBeGreaterThanOrEqual(before);
    expect(copy.data.deadLetteredAt).toBeLessThanOrEqual(after);
    const recent = await cli('dlq', 'list', 'webhook', '--since', '1h');
    expect(recent.code).toBe(0);
    expect(recent.output).toContain(id);
  });

  it('purges with a selection only and supports dry runs', async () => {
    const none = await cli('dlq', 'purge', 'webhook');
    expect(none.code).toBe(2);
    expect(none.output).toMatch(/--id \(QUEUELENS_DLQ_ID\), --since \(QUEUELENS_DLQ_SINCE\) or --all/);
    const total = await h.queue('webhook-dlq').getWaitingCount();
    expect(total).toBeGreaterThan(0);
    const dry = await cli('dlq', 'purge', 'webhook', '--all', '--dry-run');
    expect(dry.output).toContain(`would purge ${total}`);
    const future = await cli('dlq', 'purge', 'webhook', '--since', new Date(Date.now() + 60_000).toISOString());
    expect(future.output).toContain('purged 0');
    const all = await cli('dlq', 'purge', 'webhook', '--all');
    expect(all.output).toContain(`purged ${total}`);
    expect(await h.queue('webhook-dlq').getWaitingCount()).toBe(0);
    expect(await redis.client().exists(SECRETS_KEY)).toBe(0);
    const badSince = await cli('dlq', 'list', 'webhook', '--since', 'yesterday-ish');
    expect(badSince.code).toBe(2);
    expect(badSince.output).toContain('invalid --since (QUEUELENS_DLQ_SINCE)');
  });

  it('redrives a large selection in one command with a progress bar', async () => {
    const dlq = new Queue('webhook-dlq', { connection: { host: '127.0.0.1', port: redis.port }, skipMetasUpdate: true });
    await dlq.addBulk(bulkWebhookDeadLetters('bull', `${rx.url}/bulk`, 150));
    await dlq.close();
    const res = await cli('dlq', 'redrive', 'webhook', '--all');
    expect(res.code).toBe(0);
    expect(res.output).toContain('"redriven":150');
    expect(res.output).toContain('redrive [');
    await waitFor('150 bulk deliveries', () => rx.deliveries.filter((d) => d.path === '/bulk').length === 150, 30_000);
  });
});
