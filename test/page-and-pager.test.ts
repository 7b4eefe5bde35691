// Issue 13, "the page and the pager must agree": one scenario in real Redis (a queue, its dead-letter queue, a
// user's queue that only ends in -dlq, a paused queue) goes through the status verdict, /health and the status
// page's card, and its exported series go through the bundled alert rules with `promtool test rules`. The two
// must name the same alerts for the same queues, and both must match what the scenario was built to be.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueuesResponse } from '../src/status/queue-view.js';
import { BullFixtures } from './helpers/bullmq.js';
import { requireBinary, run } from './helpers/prometheus-binaries.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

const root = fileURLToPath(new URL('..', import.meta.url));
/** The alerts the verdict evaluates on gauges alone (no rate window), so one collection decides both sides. */
const GAUGE_ALERTS = ['BullMQNoWorkers', 'BullMQOldestJobTooOld'];

let redis: TestRedis;
let bull: BullFixtures;
let dir: string;

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  dir = mkdtempSync(join(tmpdir(), 'queuelens-pager-'));
});
afterAll(async () => {
  await bull?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('one definition of a dead-letter queue and of a paused queue', () => {
  it('the status verdict, /health, the card and the alert rules agree, and match the scenario', async () => {
    const promtool = requireBinary('promtool');
    const [sec] = await redis.client().time();
    const oldTs = Number(sec) * 1000 - 3_600_000; // an hour: past every age threshold
    const fill = async (name: string, n: number) => {
      const q = bull.queue(name);
      await q.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'j', data: { i }, opts: { timestamp: oldTs } })));
      return q;
    };
    // Ground truth, by construction: no worker anywhere.
    await fill('orders', 150); // an ordinary queue: backlog, nobody consumes it, an hour old -> both alerts
    await fill('orders-dlq', 150); // the dead-letter queue of orders -> parks jobs on purpose, no alert
    await fill('legacy-dlq', 150); // a user's queue with no `legacy` queue: ordinary -> both alerts
    const paused = await fill('maint', 150); // paused for maintenance -> no alert
    await paused.pause();
    const truth: Record<string, string[]> = { orders: GAUGE_ALERTS, 'orders-dlq': [], 'legacy-dlq': GAUGE_ALERTS, maint: [] };

    const s = await testSidecar(redis.url, { events: 'false', healthMaxWaiting: '100', healthMaxOldestAge: '60', healthMinWorkers: '1' });
    try {
      await s.refresh();
      const api = (await s.app.inject({ url: '/api/queues' })).json() as QueuesResponse;
      const verdict: Record<string, string[]> = {};
      for (const v of api.queues) verdict[v.name] = v.health.reasons.flatMap((r) => (r.alert && GAUGE_ALERTS.includes(r.alert) ? [r.alert] : [])).sort();
      expect(verdict).toEqual(truth);
      // No other warning either: a dead-letter queue is never "backlog growing" nor anything else on its own row.
      expect(api.queues.find((v) => v.name === 'orders-dlq')!.health.status).toBe('ok');
      expect(api.queues.find((v) => v.name === 'legacy-dlq')!.deadLetterOf).toBeNull();
      expect(api.queues.find((v) => v.name === 'orders')!.deadLetter?.jobs).toBe(150);

      const health = (await s.app.inject({ url: '/health' })).json() as { degradedQueues?: Array<{ queue: string }> };
      expect((health.degradedQueues ?? []).map((d) => d.queue).sort()).toEqual(['legacy-dlq', 'orders']);

      // The status page's "jobs waiting" card: the sum of the rows that are not dead-letter queues.
      const card = api.queues.reduce((n, q) => n + (q.deadLetterOf === null ? q.backlog : 0), 0);
      expect(card).toBe(450);

      // The same collection through the alert rules: every exported series held for 30 minutes.
      const body = (await s.app.inject({ url: '/metrics' })).body;
      const input = body
        .split('\n')
        .filter((l) => /^bullmq_(queue_|dlq_jobs)/.test(l))
        .map((l) => {
          const m = /^(\w+)\{(.*)\} (\S+)$/.exec(l)!;
          return `      - series: '${m[1]}{job="queuelens", instance="s1", ${m[2]}}'\n        values: '${m[3]}x30'`;
        });
      const samples = Object.entries(verdict).flatMap(([queue, alerts]) =>
        alerts.map((alertname) => `          - labels: '{alertname="${alertname}", prefix="bull", queue="${queue}"}'\n            value: 1`),
      );
      const file = join(dir, 'page-and-pager.test.yml');
      writeFileSync(
        file,
        `rule_files:\n  - ${join(root, 'alerts/queuelens.rules.yml')}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n${input.join('\n')}\n` +
          `    promql_expr_test:\n      - expr: count by (alertname, prefix, queue) (ALERTS{alertstate="firing", alertname=~"${GAUGE_ALERTS.join('|')}"})\n` +
          `        eval_time: 20m\n        exp_samples:\n${samples.join('\n')}\n`,
      );
      const r = run(promtool, ['test', 'rules', file], dir);
      expect(r.output, 'promtool: the alert rules fire for exactly the queues the verdict flags').toContain('SUCCESS');
      expect(r.status).toBe(0);
    } finally {
      await s.close();
    }
  });
});
