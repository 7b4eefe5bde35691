// `queuelens loadgen --scenario`: each alert situation made on demand, against real workers and peers, with
// what landed in Redis (or reached the peers) checked against what the load generator reports it sent.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueEvents } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveWorkerConfig } from '../src/config/worker-config.js';
import { startDemoPeers, type DemoPeers } from '../src/demo/demo-peers.js';
import { scenarioFor } from '../src/loadgen/loadgen-scenarios.js';
import { SCENARIOS } from '../src/config/loadgen-config.js';
import { validateJob } from '../src/jobs/schemas.js';
import { createLogger } from '../src/log/logger.js';
import { startWorkers } from '../src/workers/start-workers.js';
import { waitFor } from './helpers/bullmq.js';
import { runCli } from './helpers/cli.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

let redis: TestRedis;
let peers: DemoPeers;
let exportDir: string;

beforeAll(async () => {
  redis = await startTestRedis();
  peers = await startDemoPeers();
  exportDir = mkdtempSync(join(tmpdir(), 'queuelens-loadgen-test-'));
});

afterAll(async () => {
  await peers?.close();
  await redis?.stop();
  if (exportDir) rmSync(exportDir, { recursive: true, force: true });
});

const cfg = { mix: { email: 6, webhook: 3, export: 1 }, failureShare: 0.05, webhookTarget: 'http://127.0.0.1:9/hook', exportRows: 10 };
const report = (output: string) =>
  JSON.parse(output.trim().split('\n').pop()!) as { enqueued: number; counts: Record<string, { sent: number; failing: number }> };
const workerConfig = (over: Record<string, string>) =>
  resolveWorkerConfig({
    redisUrl: redis.url,
    smtpUrl: peers.smtpUrl,
    webhookAllow: '127.0.0.1',
    webhookSecret: 'test-secret-123',
    exportDir,
    logLevel: 'silent',
    ...over,
  });

describe('loadgen scenarios', () => {
  it('plan only jobs their queue accepts, shaped for their alert', () => {
    for (const name of SCENARIOS) {
      const s = scenarioFor(name, cfg);
      for (let n = 0; n < 300; n += 1) {
        const job = s.plan(n, Math.random);
        validateJob(job.queue, job.data);
        if (name === 'no-workers') expect(job.into).toBe('reports');
        if (name === 'failing-webhook')
          expect(job).toMatchObject({ queue: 'webhook', opts: { attempts: 3 }, data: { url: 'http://127.0.0.1:9/hook?status=500' } });
        if (name === 'backlog') expect(job.data).toMatchObject({ rows: 1000 });
      }
    }
    const demo = scenarioFor('demo', cfg);
    // Jobs 0 and 1 share a deduplication id; the first is delayed so the second always meets it.
    expect(demo.plan(0, Math.random).opts).toEqual({ deduplication: { id: 'digest-0' }, delay: 2000 });
    expect(demo.plan(1, Math.random).opts).toEqual({ deduplication: { id: 'digest-0' }, delay: 2000 });
  });

  it('no-workers: jobs pile up in a queue nobody consumes, and the verdict says so', async () => {
    const res = await runCli(['loadgen', '--scenario', 'no-workers', '--rate', '20', '--duration', '1', '--redis-url', redis.url, '--log-level', 'silent']);
    expect(res.code).toBe(0);
    const sent = report(res.output).counts.reports!.sent;
    expect(sent).toBeGreaterThanOrEqual(15);
    expect(await redis.client().llen('bull:reports:wait')).toBe(sent);
    const s = await testSidecar(redis.url, { queues: 'reports' });
    await s.refresh();
    const q = (await s.app.inject({ url: '/api/queues/reports' })).json().queue;
    expect(q.backlog).toBe(sent);
    expect(q.health.reasons[0]).toMatchObject({ code: 'no_workers', alert: 'BullMQNoWorkers' });
    await s.close();
  });

  it('failing-webhook: every delivery fails three times, then the job is dead-lettered', async () => {
    const workers = await startWorkers(workerConfig({}), ['webhook'], createLogger({ level: 'silent' }));
    try {
      const failedBefore = peers.counts.webhooksFailed;
      const res = await runCli([
        'loadgen',
        '--scenario',
        'failing-webhook',
        '--rate',
        '10',
        '--duration',
        '1',
        '--webhook-target',
        peers.webhookUrl,
        '--redis-url',
        redis.url,
        '--log-level',
        'silent',
      ]);
      expect(res.code).toBe(0);
      const sent = report(res.output).counts.webhook!.sent;
      expect(sent).toBeGreaterThanOrEqual(5);
      const dlq = redis.client();
      await waitFor('every job in webhook-dlq', async () => (await dlq.llen('bull:webhook-dlq:wait')) === sent, 20_000, 100);
      expect(peers.counts.webhooksFailed - failedBefore).toBe(3 * sent);
      expect(await dlq.zcard('bull:webhook:failed')).toBe(sent);
    } finally {
      await workers.close();
    }
  });

  it("stall: a consumer dies holding an export job, and the workers' stall check reclaims it", async () => {
    const workers = await startWorkers(workerConfig({ stalledInterval: '1', lockDuration: '5' }), ['export'], createLogger({ level: 'silent' }));
    const events = new QueueEvents('export', { connection: { host: '127.0.0.1', port: redis.port } });
    const stalled: string[] = [];
    events.on('stalled', ({ jobId }) => stalled.push(jobId));
    await events.waitUntilReady();
    try {
      // The companion crashes its first consumer after 1 s; 6 s leave room for the lock to expire and be noticed.
      // No planned failures (the consumer could die holding one, which would then rightly fail), and small exports:
      // the reclaimed job goes back behind the others, and they should not take long on a busy CI box.
      const res = await runCli(
        [
          'loadgen',
          '--scenario',
          'stall',
          '--mix',
          'export=1',
          '--rate',
          '4',
          '--duration',
          '6',
          '--failure-share',
          '0',
          '--export-rows',
          '50',
          '--redis-url',
          redis.url,
          '--log-level',
          'silent',
        ],
        {},
        30_000,
      );
      expect(res.code).toBe(0);
      await waitFor('a stalled event', () => stalled.length > 0, 10_000);
      // The reclaimed job still completes: a stall loses no work.
      const client = redis.client();
      await waitFor('the stalled job to complete', async () => (await client.zscore('bull:export:completed', stalled[0]!)) !== null, 30_000, 100).catch(
        async (err: Error) => {
          const counts = await client.eval(
            "return {redis.call('LLEN', KEYS[1]), redis.call('LLEN', KEYS[2]), redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[4])}",
            4,
            'bull:export:wait',
            'bull:export:active',
            'bull:export:completed',
            'bull:export:failed',
          );
          throw new Error(`${err.message} (export wait/active/completed/failed ${JSON.stringify(counts)}; stalled ${JSON.stringify(stalled)})`);
        },
      );
    } finally {
      await events.close();
      await workers.close();
    }
  });
});
