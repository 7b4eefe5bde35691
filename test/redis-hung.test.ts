// A Redis that hangs (SIGSTOP: connections stay open, nothing answers) is down, not up: redis_up 0 and /readyz
// 503 once a command misses its deadline, BullMQRedisDown fires on exactly what the sidecar then exports
// (checked with promtool), and all of it recovers after SIGCONT.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { parsePromText } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

let redis: TestRedis;
let bull: BullFixtures;

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  await bull.queue('hung').add('j', {});
});

afterAll(async () => {
  redis?.resume();
  await bull?.close();
  await redis?.stop();
});

/** A promtool unit test feeding two replicas that both export `values` (sampled per minute) to the shipped rules. */
function promtoolRedisDown(values: { up: number; redisUp: number }): { status: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'queuelens-hung-'));
  const rules = resolve('alerts/queuelens.rules.yml');
  // The links are settings of the generated rules; the summary and description are what this test checks.
  const groups = (parse(readFileSync(rules, 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string; annotations?: Record<string, string> }> }> }).groups;
  const links = groups.flatMap((g) => g.rules).find((r) => r.alert === 'BullMQRedisDown')!.annotations!;
  const series = (name: string, instance: string, v: number) =>
    `      - series: '${name}{job="queuelens", instance="${instance}"}'\n        values: '${v}x10'\n`;
  const input = ['s1:9487', 's2:9487']
    .map((i) => series('up', i, 1) + series('bullmq_exporter_up', i, values.up) + series('bullmq_exporter_redis_up', i, values.redisUp))
    .join('');
  const test = `rule_files:
  - ${rules}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
${input}    alert_rule_test:
      - eval_time: 5m
        alertname: BullMQRedisDown
        exp_alerts:
          - exp_labels: { severity: critical, job: queuelens }
            exp_annotations:
              summary: 'queuelens cannot reach Redis'
              description: 'No replica of job queuelens can reach Redis (bullmq_exporter_redis_up = 0): producers and workers are likely failing too.'
              runbook_url: '${links.runbook_url}'
              dashboard_url: '${links.dashboard_url!.replace(/\{\{ \$labels\.\w+ \| urlquery \}\}/g, '')}'
      - eval_time: 5m
        alertname: BullMQExporterDown
        exp_alerts: []
`;
  writeFileSync(join(dir, 'hung.test.yml'), test);
  const r = spawnSync('promtool', ['test', 'rules', join(dir, 'hung.test.yml')], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  if (r.error) throw new Error('promtool not found: apt-get install -y prometheus');
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('a hung Redis', () => {
  it('counts as down (redis_up 0, /readyz 503, BullMQRedisDown fires) while SIGSTOPped, and recovers after SIGCONT', async () => {
    const s = await testSidecar(redis.url, { collectInterval: '1', events: 'false' });
    await s.start();
    const metrics = async () => parsePromText((await s.app.inject({ url: '/metrics' })).body);
    const ready = async () => (await s.app.inject({ url: '/readyz' })).statusCode;
    await waitFor('collecting', async () => (await metrics()).get('bullmq_exporter_up') === 1 && (await ready()) === 200);
    expect((await metrics()).get('bullmq_exporter_redis_up')).toBe(1);

    redis.pause();
    let frozen;
    try {
      // The collection's commands miss their deadline (max(2 s, interval)); the connection itself stays open.
      frozen = await waitFor(
        'redis_up 0 while Redis hangs',
        async () => {
          const m = await metrics();
          return m.get('bullmq_exporter_redis_up') === 0 ? m : undefined;
        },
        60_000,
      );
      await waitFor('/readyz 503 while Redis hangs', async () => (await ready()) === 503, 60_000);
      expect(s.redis.status).toBe('ready'); // what main took for "up"
    } finally {
      redis.resume();
    }

    // What the sidecar exported while frozen, as every replica would, pages BullMQRedisDown and not ExporterDown.
    const verdict = promtoolRedisDown({ up: frozen.get('bullmq_exporter_up')!, redisUp: frozen.get('bullmq_exporter_redis_up')! });
    expect(verdict.out).toContain('SUCCESS');
    expect(verdict.status).toBe(0);

    await waitFor(
      'recovered after SIGCONT',
      async () => {
        const m = await metrics();
        return m.get('bullmq_exporter_redis_up') === 1 && m.get('bullmq_exporter_up') === 1 && (await ready()) === 200;
      },
      60_000,
    );
    await s.close();
  }, 180_000);

  it('the exported values of a Redis that is up do not page BullMQRedisDown (the promtool check can fail)', () => {
    const verdict = promtoolRedisDown({ up: 1, redisUp: 1 });
    expect(verdict.status).not.toBe(0);
  });
});
