// `queuelens worker` as a real process: config errors exit 2 naming the option, SIGTERM lets in-flight
// jobs finish, and a SIGKILL mid-job loses nothing (stall recovery completes the job in another worker).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Producer } from '../src/jobs/producer.js';
import { waitFor } from './helpers/bullmq.js';
import { runCli, spawnCli, type CliProcess } from './helpers/cli.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const SECRET = 'process-test-secret';
let redis: TestRedis;
let rx: WebhookReceiver;
let producer: Producer;
const procs: CliProcess[] = [];

beforeAll(async () => {
  redis = await startTestRedis();
  rx = await startWebhookReceiver(SECRET);
  producer = new Producer({ redisUrl: redis.url });
});

afterAll(async () => {
  for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
  await producer?.close();
  await rx?.close();
  await redis?.stop();
});

function worker(extra: string[] = []): CliProcess {
  const p = spawnCli(['worker', 'webhook', '--webhook-allow', '127.0.0.1', '--lock-duration', '1', '--stalled-interval', '0.5', ...extra], {
    REDIS_URL: redis.url,
    WEBHOOK_SECRET: SECRET,
    LOG_LEVEL: 'info',
  });
  procs.push(p);
  return p;
}

const started = (p: CliProcess) => waitFor('workers started', () => p.output().includes('workers started'), 15_000);
const state = async (id: string) => (await producer.queue('webhook').getJobState(id)) as string;

describe('worker process', () => {
  it('exits 2 naming the option on bad configuration', async () => {
    const badQueue = await runCli(['worker', 'sms'], { REDIS_URL: redis.url });
    expect(badQueue.code).toBe(2);
    expect(badQueue.output).toContain('invalid queue "sms"');
    const bad = await runCli(['worker', 'email', '--email-concurrency', '0', '--email-rate-limit', 'fast'], { REDIS_URL: redis.url });
    expect(bad.code).toBe(2);
    expect(bad.output).toContain('invalid --email-concurrency (EMAIL_CONCURRENCY) "0"');
    expect(bad.output).toContain('invalid --email-rate-limit (EMAIL_RATE_LIMIT) "fast": expected <jobs>/<seconds>');
    const env = await runCli(['worker', 'webhook'], { REDIS_URL: redis.url, WEBHOOK_TIMEOUT: '-1' });
    expect(env.code).toBe(2);
    expect(env.output).toContain('invalid --webhook-timeout (WEBHOOK_TIMEOUT)');
    const enqueue = await runCli(['enqueue', 'email', '--data', '{"template":"welcome","to":"nope"}', '--redis-url', redis.url]);
    expect(enqueue.code).toBe(2);
    expect(enqueue.output).toContain('invalid --data (QUEUELENS_JOB_DATA): invalid email job: to:');
  });

  it('writes its dead-letter markers under --own-prefix, the same option the sidecar and dlq take', async () => {
    const p = worker(['--own-prefix', 'own-test']);
    await started(p);
    const job = await producer.enqueueWebhook({ url: `${rx.url}/own-prefix?status=400`, event: 'e', payload: null }, { attempts: 1 });
    const r = redis.client();
    await waitFor('dead-letter marker', async () => (await r.zscore('own-test:dlq-done:bull:webhook', job.id!)) !== null, 10_000);
    expect(await r.exists('queuelens:dlq-done:bull:webhook')).toBe(0);
    p.proc.kill('SIGTERM');
    expect((await p.exited).code).toBe(0);
    // dlq takes the same option and, like the worker, refuses own keys inside the BullMQ prefix.
    const clash = await runCli(['dlq', 'list', 'webhook', '--own-prefix', 'bull'], { REDIS_URL: redis.url });
    expect(clash.code).toBe(2);
    expect(clash.output).toContain('invalid --own-prefix (QUEUELENS_OWN_PREFIX) "bull": must differ from --prefix');
  });

  it('finishes in-flight jobs on SIGTERM, then exits 0 and takes nothing new', async () => {
    const p = worker(['--webhook-concurrency', '3', '--shutdown-timeout', '20']);
    await started(p);
    const jobs = await Promise.all([1, 2, 3].map((i) => producer.enqueueWebhook({ url: `${rx.url}/term?delay=1500`, event: 'e', payload: i })));
    await waitFor('three in flight', () => rx.deliveries.filter((d) => d.path === '/term').length === 3);
    p.proc.kill('SIGTERM');
    const late = await producer.enqueueWebhook({ url: `${rx.url}/late`, event: 'e', payload: 0 });
    const { code } = await p.exited;
    expect(code).toBe(0);
    for (const j of jobs) expect(await state(j.id!)).toBe('completed');
    expect(await state(late.id!)).toBe('waiting');
    expect(p.output()).toContain('shutdown complete');
  });

  it('loses no job when the worker is SIGKILLed mid-job: another worker completes it after stall recovery', async () => {
    const first = worker();
    await started(first);
    const job = await producer.enqueueWebhook({ url: `${rx.url}/kill?hold-first=60000`, event: 'e', payload: 1 });
    await waitFor('delivery in flight', () => rx.deliveries.some((d) => d.path === '/kill'));
    expect(await state(job.id!)).toBe('active');
    first.proc.kill('SIGKILL');
    await first.exited;
    const second = worker();
    await started(second);
    await waitFor('job completed after stall recovery', async () => (await state(job.id!)) === 'completed', 20_000);
    const kills = rx.deliveries.filter((d) => d.path === '/kill');
    expect(kills).toHaveLength(2);
    expect(kills[0]!.headers['x-queuelens-delivery']).toBe(kills[1]!.headers['x-queuelens-delivery']);
    const events = await redis.client().xrange('bull:webhook:events', '-', '+');
    expect(events.some(([, f]) => f[1] === 'stalled' && f[3] === job.id)).toBe(true);
    second.proc.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
  });
});
