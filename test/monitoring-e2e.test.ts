// The monitoring against the real sidecar: two `queuelens sidecar` processes on one Redis, scraped by a real
// Prometheus that loads rules generated from settings.ts (test-sized durations), routed through a real
// Alertmanager (the example config) to a webhook receiver. Workers stopped while jobs wait must page
// BullMQNoWorkers and BullMQOldestJobTooOld, with values counted once although two replicas export them; a
// worker draining the queue must resolve both. Redis and a replica stopped page their alerts and resolve.
// The other scenarios and the dashboard queries: test/monitoring-scenarios-e2e.test.ts.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { settings, type MonitoringSettings } from '../src/thresholds/monitoring-settings.js';
import { BullFixtures, waitFor } from './helpers/bullmq.js';
import { spawnCli, type CliProcess } from './helpers/cli.js';
import { startMonitoringStack, type MonitoringStack, type NotifiedAlert, type RunningPrometheus, type WebhookReceiver } from './helpers/prometheus.js';
import { freePort, startTestRedis, type TestRedis } from './helpers/redis-server.js';

const WAITING = 5;
const testSettings: MonitoringSettings = {
  ...settings,
  exporter: { ...settings.exporter, downFor: '1s', redisDownFor: '1s' },
  defaults: {
    ...settings.defaults,
    noWorkers: { window: '10s', for: '2s' },
    oldestJob: { maxAgeSeconds: 3, for: '1s' },
  },
};

let redis: TestRedis;
let bull: BullFixtures;
const sidecars: CliProcess[] = [];
const ports: number[] = [];
let stack: MonitoringStack;
let receiver: WebhookReceiver;
let prometheus: RunningPrometheus;

function startSidecar(port: number): CliProcess {
  return spawnCli([
    'sidecar',
    '--redis-url',
    redis.url,
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--collect-interval',
    '0.5',
    '--discovery-interval',
    '1',
    '--log-level',
    'warn',
  ]);
}

const isAlert = (name: string, status: 'firing' | 'resolved') => (a: NotifiedAlert) => a.labels.alertname === name && a.status === status;

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  const email = bull.queue('email');
  for (let i = 0; i < WAITING; i += 1) await email.add('welcome', { n: i });
  await bull.queue('email-dlq').add('welcome', { n: 99 });

  for (let i = 0; i < 2; i += 1) {
    const port = await freePort();
    ports.push(port);
    sidecars.push(startSidecar(port));
  }
  for (const port of ports) {
    await waitFor(
      `sidecar on ${port} exporting the email queue`,
      async () => {
        const r = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined);
        return r?.ok && (await r.text()).includes('queue="email"');
      },
      20_000,
    );
  }

  stack = await startMonitoringStack(
    testSettings,
    ports.map((p) => `127.0.0.1:${p}`),
  );
  ({ receiver, prometheus } = stack);
});

afterAll(async () => {
  await stack?.stop();
  for (const s of sidecars) {
    s.proc.kill('SIGTERM');
    await s.exited;
  }
  await bull?.close();
  await redis?.stop();
});

test('both replicas are scraped and export the same queue depth', async () => {
  const waiting = await waitFor(
    'both replicas scraped',
    async () => {
      const r = await prometheus.query('bullmq_queue_jobs{queue="email", state="waiting"}');
      return r.length === 2 ? r : undefined;
    },
    20_000,
  );
  expect(waiting.map((s) => s.value)).toEqual([WAITING, WAITING]);
});

test('with no worker, BullMQNoWorkers and BullMQOldestJobTooOld page the on-call hook, counted once', async () => {
  const noWorkers = await receiver.waitForAlert(isAlert('BullMQNoWorkers', 'firing'), 40_000);
  expect(noWorkers.labels).toMatchObject({ prefix: 'bull', queue: 'email', severity: 'critical' });
  // Two replicas export 5 waiting jobs each: the alert must say 5, not 10.
  expect(noWorkers.annotations.description).toMatch(new RegExp(`^${WAITING} jobs of queue bull:email are ready to run`));
  const oldest = await receiver.waitForAlert(isAlert('BullMQOldestJobTooOld', 'firing'), 40_000);
  const age = /^The next job of queue bull:email has been ready to run for ([\d.]+)s \(threshold 3s\)\.$/.exec(oldest.annotations.description ?? '');
  expect(Number(age?.[1])).toBeGreaterThan(3);
});

test('a worker draining the queue resolves both alerts', async () => {
  bull.worker('email', async () => 'sent');
  for (const name of ['BullMQNoWorkers', 'BullMQOldestJobTooOld']) {
    const resolved = await receiver.waitForAlert(isAlert(name, 'resolved'), 40_000);
    expect(resolved.labels.queue).toBe('email');
  }
});

test('Redis stopped pages BullMQRedisDown, not BullMQExporterDown, and resolves when Redis is back', async () => {
  await bull.close(); // the producer and worker would only log connection errors from here on
  await redis.kill();
  const down = await receiver.waitForAlert(isAlert('BullMQRedisDown', 'firing'), 40_000);
  expect(down.labels).toMatchObject({ job: settings.exporterJob, severity: 'critical' });
  expect(down.annotations.description).toBe(
    `No replica of job ${settings.exporterJob} can reach Redis (bullmq_exporter_redis_up = 0): producers and workers are likely failing too.`,
  );
  // Both replicas report a failed collection now; that is Redis' fault, so no replica is paged as down.
  expect((await prometheus.query('bullmq_exporter_up == 0')).length).toBe(2);
  expect((await prometheus.alerts()).filter((a) => a.labels.alertname === 'BullMQExporterDown')).toEqual([]);

  await redis.restart();
  await receiver.waitForAlert(isAlert('BullMQRedisDown', 'resolved'), 40_000);
});

test('a sidecar stopped pages BullMQExporterDown for that replica, resolved when it is back', async () => {
  const [first] = sidecars.splice(0, 1);
  first!.proc.kill('SIGTERM');
  await first!.exited;
  const instance = `127.0.0.1:${ports[0]}`;
  // Match on the instance: the test-sized `for` lets the "no replica collecting" rule flicker while the
  // replicas' first collection after Redis came back is under way.
  const down = await receiver.waitForAlert((a) => isAlert('BullMQExporterDown', 'firing')(a) && a.labels.instance === instance, 40_000);
  expect(down.labels).toMatchObject({ instance, severity: 'warning' });
  expect(down.annotations.summary).toBe(`queuelens replica 127.0.0.1:${ports[0]} is down`);

  sidecars.push(startSidecar(ports[0]!));
  const back = await receiver.waitForAlert((a) => isAlert('BullMQExporterDown', 'resolved')(a) && a.labels.instance === instance, 40_000);
  expect(back.labels.severity).toBe('warning');
});
