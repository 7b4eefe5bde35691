// Proves test/helpers/prometheus.ts: a real Prometheus scrapes a loopback exporter, evaluates rules generated
// from the repo's settings with test-sized durations, and a real Alertmanager (routed by the example config)
// delivers the alert to a webhook receiver, then its resolution.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { settings, type MonitoringSettings } from '../src/thresholds/monitoring-settings.js';
import { waitFor } from './helpers/bullmq.js';
import { loadDashboards, panelQueries, substituteVariables } from './helpers/dashboards.js';
import { startMonitoringStack, type MonitoringStack, type RunningPrometheus, type WebhookReceiver } from './helpers/prometheus.js';
import { requireBinary } from './helpers/prometheus-binaries.js';
import { freePort } from './helpers/redis-server.js';

// What the fake sidecar serves; the test changes it to make the alert fire and resolve.
let oldestAge = 900;
let exporter: Server;
let exporterPort: number;
let stack: MonitoringStack;
let receiver: WebhookReceiver;
let prometheus: RunningPrometheus;

const testSettings: MonitoringSettings = {
  ...settings,
  defaults: { ...settings.defaults, oldestJob: { maxAgeSeconds: 300, for: '0s' } },
};

beforeAll(async () => {
  exporter = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(
      [
        '# TYPE bullmq_queue_oldest_waiting_age_seconds gauge',
        `bullmq_queue_oldest_waiting_age_seconds{prefix="bull",queue="email"} ${oldestAge}`,
        '# TYPE bullmq_exporter_up gauge',
        'bullmq_exporter_up 1',
        '',
      ].join('\n'),
    );
  });
  exporterPort = await freePort();
  await new Promise<void>((resolve) => exporter.listen(exporterPort, '127.0.0.1', resolve));

  stack = await startMonitoringStack(testSettings, [`127.0.0.1:${exporterPort}`]);
  ({ receiver, prometheus } = stack);
});

afterAll(async () => {
  await stack?.stop();
  await new Promise<void>((resolve) => (exporter ? exporter.close(() => resolve()) : resolve()));
});

test('a missing alertmanager fails with the command that installs it', () => {
  const path = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    expect(() => requireBinary('prometheus-alertmanager', 'alertmanager')).toThrow(/apt-get install -y prometheus-alertmanager/);
  } finally {
    process.env.PATH = path;
  }
});

test('Prometheus scrapes the loopback target under the job the alerts select', async () => {
  const up = await waitFor(
    'a successful scrape',
    async () => {
      const r = await prometheus.query(`up{job="${settings.exporterJob}"} == 1`);
      return r.length > 0 ? r : undefined;
    },
    20_000,
  );
  expect(up[0]?.metric.instance).toBe(`127.0.0.1:${exporterPort}`);
  const age = await prometheus.query('bullmq_queue_oldest_waiting_age_seconds');
  expect(age.map((s) => [s.metric.queue, s.value])).toEqual([['email', 900]]);
});

test('an alert fires through Alertmanager to the on-call webhook, then resolves', async () => {
  const firing = await receiver.waitForAlert((a) => a.labels.alertname === 'BullMQOldestJobTooOld' && a.status === 'firing');
  expect(firing.labels).toMatchObject({ queue: 'email', prefix: 'bull', severity: 'critical' });
  expect(firing.annotations.description).toBe('The next job of queue bull:email has been ready to run for 15m 0s (threshold 5m).');
  expect(receiver.notifications.find((n) => n.alerts.includes(firing))?.path).toBe('/on-call');

  oldestAge = 10;
  const resolved = await receiver.waitForAlert((a) => a.labels.alertname === 'BullMQOldestJobTooOld' && a.status === 'resolved');
  expect(resolved.labels.queue).toBe('email');
});

test('Prometheus accepts every dashboard query (variables substituted as Grafana would)', async () => {
  // Type errors (a range vector where an instant one belongs, a bad grouping) only show in the query engine.
  for (const { dashboard } of loadDashboards()) {
    for (const { panel, expr } of panelQueries(dashboard)) {
      await expect(prometheus.query(substituteVariables(expr, { prefix: ['bull'], queue: ['email'] })), `${dashboard.uid} / ${panel}`).resolves.toBeDefined();
    }
  }
});
