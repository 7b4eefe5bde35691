// `queuelens loadgen`: paced mixed traffic whose reported counts match what Redis holds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mixedScenario } from '../src/loadgen/loadgen-scenarios.js';
import { validateJob } from '../src/jobs/schemas.js';
import { runCli } from './helpers/cli.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;

beforeAll(async () => {
  redis = await startTestRedis();
});

afterAll(async () => {
  await redis?.stop();
});

describe('loadgen', () => {
  it('plans only valid jobs, in the requested mix and failure share', () => {
    const s = mixedScenario({ mix: { email: 1, webhook: 1, export: 2 }, failureShare: 0.25, webhookTarget: 'http://127.0.0.1:9/h', exportRows: 5 });
    let seed = 42;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const counts: Record<string, number> = { email: 0, webhook: 0, export: 0, failing: 0 };
    for (let n = 0; n < 4000; n += 1) {
      const job = s.plan(n, random);
      validateJob(job.queue, job.data);
      counts[job.queue]! += 1;
      if (job.failing) counts.failing! += 1;
    }
    expect(counts.export! / 4000).toBeCloseTo(0.5, 1);
    expect(counts.email! / 4000).toBeCloseTo(0.25, 1);
    expect(counts.failing! / 4000).toBeCloseTo(0.25, 1);
  });

  it('enqueues at the given rate for the given time and reports exactly what it added', async () => {
    const res = await runCli(['loadgen', '--rate', '40', '--duration', '1.5', '--failure-share', '0.5', '--redis-url', redis.url, '--log-level', 'silent']);
    expect(res.code).toBe(0);
    const report = JSON.parse(res.output.trim().split('\n').pop()!) as { enqueued: number; counts: Record<string, { sent: number }> };
    expect(report.enqueued).toBeGreaterThanOrEqual(40);
    expect(report.enqueued).toBeLessThanOrEqual(70);
    const r = redis.client();
    for (const q of ['email', 'webhook', 'export']) expect(await r.llen(`bull:${q}:wait`), q).toBe(report.counts[q]?.sent ?? 0);
    const bad = await runCli(['loadgen', '--mix', 'sms=1', '--redis-url', redis.url]);
    expect(bad.code).toBe(2);
    expect(bad.output).toContain('invalid --mix (LOADGEN_MIX)');
  });
});
