// What on-call reads first: a worker without WEBHOOK_SECRET says so at start-up and names the reason in every dead
// letter it makes; the key log lines ('attempt failed; will retry', 'job dead-lettered') carry the reason and the
// failed attempt's trace_id/span_id when the worker traces.
import { createServer, type Server } from 'node:http';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_WEBHOOK_SECRET } from '../src/workers/webhook-processor.js';
import { waitFor } from './helpers/bullmq.js';
import { runCli, spawnCli } from './helpers/cli.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

let redis: TestRedis;
let rx: WebhookReceiver;
let collector: Server;
let endpoint: string;

beforeAll(async () => {
  redis = await startTestRedis();
  rx = await startWebhookReceiver('job-secret-123');
  // An OTLP receiver that accepts and drops: the worker traces for real.
  collector = createServer((req, res) => req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}')));
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(collector.address() as { port: number }).port}`;
});

afterAll(async () => {
  await rx?.close();
  await new Promise((r) => collector?.close(r));
  await redis?.stop();
});

const lines = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('worker logs', () => {
  it('warns at start without WEBHOOK_SECRET; each such dead letter and its log line name the reason; trace ids on the key lines', async () => {
    const worker = spawnCli(['worker', 'webhook', '--webhook-allow', '127.0.0.1'], {
      REDIS_URL: redis.url,
      LOG_LEVEL: 'info',
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    });
    try {
      await waitFor('workers started', () => worker.output().includes('workers started'), 60_000);
      const warning = lines(worker.output()).find((l) => String(l.msg).startsWith('WEBHOOK_SECRET is not set'));
      expect(warning).toMatchObject({ reason: NO_WEBHOOK_SECRET });

      const enqueue = (data: object, ...extra: string[]) =>
        runCli(['enqueue', 'webhook', '--data', JSON.stringify(data), ...extra], { REDIS_URL: redis.url, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint });
      const unsigned = JSON.parse((await enqueue({ url: `${rx.url}/unsigned`, event: 'e', payload: 1 })).output.trim().split('\n').pop()!) as { id: string };
      const failing = JSON.parse(
        (await enqueue({ url: `${rx.url}/down?status=500`, event: 'e', payload: 2, secret: 'job-secret-123' }, '--attempts', '2')).output
          .trim()
          .split('\n')
          .pop()!,
      ) as { id: string };

      const dlq = new Queue('webhook-dlq', { connection: redis.client(), skipMetasUpdate: true });
      const dead = await waitFor(
        'both dead letters',
        async () => {
          const jobs = await dlq.getJobs(['wait']);
          return jobs.length === 2 ? jobs : undefined;
        },
        120_000,
        200,
      );
      await dlq.close();
      const bySource = (id: string) => dead.find((j) => (j.data as { source: { jobId: string } }).source.jobId === id)!.data as { failedReason: string };
      expect(bySource(unsigned.id).failedReason).toBe(NO_WEBHOOK_SECRET);
      expect(bySource(failing.id).failedReason).toBe('webhook receiver answered 500');

      const logged = lines(worker.output());
      const deadLettered = (id: string) => logged.find((l) => l.msg === 'job dead-lettered' && l.jobId === id)!;
      expect(deadLettered(unsigned.id)).toMatchObject({ reason: NO_WEBHOOK_SECRET });
      const retry = logged.find((l) => l.msg === 'attempt failed; will retry' && l.jobId === failing.id)!;
      const final = deadLettered(failing.id);
      for (const l of [retry, final, deadLettered(unsigned.id)]) {
        expect(l.trace_id).toMatch(/^[0-9a-f]{32}$/);
        expect(l.span_id).toMatch(/^[0-9a-f]{16}$/);
      }
      expect(retry).toMatchObject({ reason: 'webhook receiver answered 500', attemptsMade: 1 });
      expect(final).toMatchObject({ reason: 'webhook receiver answered 500', attemptsMade: 2 });
      // One trace for the job, one span per attempt.
      expect(final.trace_id).toBe(retry.trace_id);
      expect(final.span_id).not.toBe(retry.span_id);
    } finally {
      worker.proc.kill('SIGTERM');
      await worker.exited;
    }
  }, 180_000);
});
