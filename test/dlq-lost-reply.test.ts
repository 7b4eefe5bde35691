// A final failure whose reply from Redis never reached the worker: Redis moved the job to `failed`, the link broke
// before the answer came back, and ioredis resent the command after reconnecting, which then found no lock. BullMQ
// emits no 'failed' event for it, so the worker's dead-letter copy never ran. It must still reach the dead-letter
// queue within seconds of Redis answering again, not at the next periodic sweep minutes later.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { UnrecoverableError } from 'bullmq';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { WorkerHarness } from './helpers/workers.js';

/** A loopback proxy to Redis that can swallow Redis's answers and then break every link it carries. */
class ReplyDroppingProxy {
  dropReplies = false;
  private readonly links = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  static async start(targetPort: number): Promise<ReplyDroppingProxy> {
    const server = createServer();
    const proxy = new ReplyDroppingProxy(server);
    server.on('connection', (client) => {
      const upstream = createConnection(targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        proxy.links.add(s);
        s.on('close', () => proxy.links.delete(s));
        s.on('error', () => {});
      }
      client.on('data', (d) => upstream.write(d));
      upstream.on('data', (d) => proxy.dropReplies || client.write(d));
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** Breaks every link and carries answers again on the ones clients open next. */
  cut(): void {
    for (const s of this.links) s.destroy();
    this.dropReplies = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

let redis: TestRedis;
let proxy: ReplyDroppingProxy;
let h: WorkerHarness;

beforeAll(async () => {
  redis = await startTestRedis();
  proxy = await ReplyDroppingProxy.start(redis.port);
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
