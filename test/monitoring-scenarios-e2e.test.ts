// The failure scenarios of the monitoring, end to end with real processes: one Redis, two `queuelens sidecar`
// replicas, real `queuelens worker webhook` and `queuelens loadgen` processes, a webhook target the test
// controls, a real Prometheus loading rules generated from settings.ts with test-sized windows, and a real
// Alertmanager routing to a webhook receiver (on-call). Each scenario runs on its own BullMQ prefix, so they
// run side by side in one stack; each alert must arrive with its labels and annotations and resolve once
// the cause is removed. Then every dashboard query returns data from the traffic the scenarios made.
import { createServer, type ServerResponse } from 'node:http';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildDashboards } from '../src/monitoring/dashboards.js';
import { settings, type MonitoringSettings } from '../src/thresholds/monitoring-settings.js';
import { waitFor } from './helpers/bullmq.js';
import { runCli, spawnCli, type CliProcess } from './helpers/cli.js';
import { loadDashboards, panelQueries, substituteVariables, type Dashboard } from './helpers/dashboards.js';
import { startMonitoringStack, TEST_BURN_RATES, type MonitoringStack, type NotifiedAlert } from './helpers/prometheus.js';
import { freePort, startTestRedis, type TestRedis } from './helpers/redis-server.js';

/** The real rules with every window and `for` scaled to seconds; thresholds as shipped where they fit a test. */
const testSettings: MonitoringSettings = {
  ...settings,
  burnRates: TEST_BURN_RATES,
  defaults: {
    ...settings.defaults,
    failureRate: { ...settings.defaults.failureRate, minFinished: 5, window: '15s', for: '1s' },
    stalls: { ...settings.defaults.stalls, window: '10s' },
    orphanedActive: { for: '1s' },
    // The strict form docs/monitoring.md gives: page on the first dead letter.
    dlqGrowing: { maxAdded: 0, window: '15s', for: '0s' },
    dlqNotEmpty: { for: '2s' },
    // 1 s is a bucket bound of bullmq_job_wait_seconds; 90% leaves a 10% budget, burnt at 2x (fast) and 1x (slow).
    waitSlo: { thresholdSeconds: 1, objective: 0.9, minJobs: 1 },
  },
};

const SECRET = 'e2e-webhook-secret';
const ALERT_TIMEOUT = 60_000;

let redis: TestRedis;
let stack: MonitoringStack;
const processes: CliProcess[] = [];

/** The webhook peer: /fail answers 500 while `failing`, /hang holds every request while `hanging`, the rest 200. */
const target = {
  url: '',
  failing: true,
  hanging: true,
  held: [] as Array<{ delivery: string; res: ServerResponse }>,
  delivered: new Map<string, number>(),
  close: (): Promise<void> => Promise.resolve(),
};

function spawn(args: string[]): CliProcess {
  const p = spawnCli([...args, '--redis-url', redis.url, '--log-level', 'warn']);
  processes.push(p);
  return p;
}

function startWorker(prefix: string, extra: string[] = []): CliProcess {
  return spawn([
    'worker',
    'webhook',
    '--prefix',
    prefix,
    '--webhook-secret',
    SECRET,
    '--webhook-allow',
    '127.0.0.1/32',
    '--lock-duration',
    '1',
    '--stalled-interval',
    '1',
    ...extra,
  ]);
}

function startLoadgen(prefix: string, path: string, rate: number, failureShare = 0): CliProcess {
  return spawn([
    'loadgen',
    '--prefix',
    prefix,
    '--mix',
    'webhook=1',
    '--failure-share',
    String(failureShare),
    '--webhook-target',
    `${target.url}${path}`,
    '--rate',
    String(rate),
    '--duration',
    '600',
  ]);
}

async function stop(p: CliProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill(signal);
  await p.exited;
}

const alertOf = (name: string, prefix: string, status: 'firing' | 'resolved') => (a: NotifiedAlert) =>
  a.labels.alertname === name && a.labels.prefix === prefix && a.status === status;

async function expectPaged(name: string, prefix: string, severity: string, description: RegExp): Promise<NotifiedAlert> {
  const a = await stack.receiver.waitForAlert(alertOf(name, prefix, 'firing'), ALERT_TIMEOUT);
  expect(a.labels).toMatchObject({ prefix, queue: 'webhook', severity });
  expect(a.annotations.description).toMatch(description);
  expect(a.annotations.runbook_url).toBe(`${settings.links.runbookBaseUrl}/${name}.md`);
  expect(a.annotations.dashboard_url).toBe(
    `${settings.links.grafanaUrl}/d/queuelens-queue/queuelens-queue?var-namespace=&var-prefix=${prefix}&var-queue=webhook`,
  );
  return a;
}

const expectResolved = (name: string, prefix: string): Promise<NotifiedAlert> => stack.receiver.waitForAlert(alertOf(name, prefix, 'resolved'), ALERT_TIMEOUT);

/** One exported value, the same on every replica (they render one persisted state). */
async function exported(expr: string): Promise<number> {
  const samples = await stack.prometheus.query(expr);
  expect(samples.length, expr).toBe(2);
  expect(samples[0]!.value, expr).toBe(samples[1]!.value);
  return samples[0]!.value;
}

beforeAll(async () => {
  redis = await startTestRedis();
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const delivery = String(req.headers['x-queuelens-delivery'] ?? '');
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/fail' && target.failing) {
        // Retry-After 0: the retry runs at once, so a job reaches the dead-letter queue within a second.
        res.writeHead(500, { 'retry-after': '0' }).end();
        return;
      }
      if (path === '/hang' && target.hanging) {
        target.held.push({ delivery, res });
        return;
      }
      target.delivered.set(delivery, (target.delivered.get(delivery) ?? 0) + 1);
      res.writeHead(200).end();
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  target.url = `http://127.0.0.1:${port}`;
  target.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });

  const sidecarPorts = [await freePort(), await freePort()];
  for (const p of sidecarPorts) {
    spawn(['sidecar', '--port', String(p), '--host', '127.0.0.1', '--prefixes', 'fail,stall,slo', '--collect-interval', '0.5', '--discovery-interval', '1']);
  }
  stack = await startMonitoringStack(
    testSettings,
    sidecarPorts.map((p) => `127.0.0.1:${p}`),
  );
});

afterAll(async () => {
  await stack?.stop();
  for (const p of processes.splice(0).reverse()) await stop(p);
  for (const { res } of target.held) res.destroy();
  await target.close();
  await redis?.stop();
});

// Each scenario waits for several alerts in turn, each within ALERT_TIMEOUT.
describe.concurrent('failure scenarios, side by side on their own prefixes', { timeout: 180_000 }, () => {
  test('a webhook target that always fails pages BullMQHighFailureRate and the dead-letter alerts; fixing it and redriving resolves them', async () => {
    startWorker('fail');
    startLoadgen('fail', '/fail', 4, 1);

    await expectPaged(
      'BullMQHighFailureRate',
      'fail',
      'critical',
      /^100% of the jobs of queue fail:webhook that finished in the last 15s failed for good \(threshold 10%, counted once at least 5 jobs finished\)\.$/,
    );
    await expectPaged(
      'BullMQDeadLetterQueueGrowing',
      'fail',
      'warning',
      /^\d+ jobs of queue fail:webhook were moved to its dead-letter queue in the last 15s \(threshold 0\)\.$/,
    );
    const notEmpty = await expectPaged(
      'BullMQDeadLetterQueueNotEmpty',
      'fail',
      'info',
      /^\d+ jobs sit in the dead-letter queue of fail:webhook: inspect them, then redrive or purge\.$/,
    );
    expect(Number(/^(\d+)/.exec(notEmpty.annotations.description!)![1])).toBeGreaterThan(0);

    target.failing = false;
    await expectResolved('BullMQHighFailureRate', 'fail');
    await expectResolved('BullMQDeadLetterQueueGrowing', 'fail');
    // Nobody redrove them yet: the parked jobs still page (at info).
    expect(
      (await stack.prometheus.alerts()).some(
        (a) => a.labels.alertname === 'BullMQDeadLetterQueueNotEmpty' && a.labels.prefix === 'fail' && a.state === 'firing',
      ),
    ).toBe(true);

    // Ground truth from Redis: what the DLQ holds is what the sidecars export and what the redrive moves.
    const dlq = new Queue('webhook-dlq', { connection: { host: '127.0.0.1', port: redis.port }, prefix: 'fail', skipMetasUpdate: true });
    try {
      const parked = await dlq.getWaitingCount();
      expect(parked).toBeGreaterThan(0);
      await waitFor(
        'both replicas exporting the DLQ depth Redis holds',
        async () => (await exported('bullmq_dlq_jobs{prefix="fail", queue="webhook"}')) === parked,
        20_000,
        200,
      );
      const redrive = await runCli(['dlq', 'redrive', 'webhook', '--all', '--prefix', 'fail', '--redis-url', redis.url]);
      expect(redrive.code, redrive.output).toBe(0);
      expect(JSON.parse(redrive.output.trim().split('\n').at(-1)!)).toMatchObject({ redriven: parked });
      expect(await dlq.getWaitingCount()).toBe(0);
    } finally {
      await dlq.close();
    }
    await expectResolved('BullMQDeadLetterQueueNotEmpty', 'fail');
  });

  test('a worker SIGKILLed mid-job pages BullMQOrphanedActiveJobs, then BullMQJobsStalling once a worker reclaims the job; both resolve', async () => {
    const worker = startWorker('stall', ['--webhook-concurrency', '1']);
    startLoadgen('stall', '/hang', 1);
    const held = await waitFor('a webhook delivery held mid-job', () => target.held[0], 30_000, 50);
    await stop(worker, 'SIGKILL');

    // Its lock expires within --lock-duration, and no live worker runs the stall check.
    await expectPaged('BullMQOrphanedActiveJobs', 'stall', 'warning', /^1 active jobs of queue stall:webhook have an expired lock and nobody reclaims them/);

    target.hanging = false;
    startWorker('stall', ['--webhook-concurrency', '1']);
    await expectPaged(
      'BullMQJobsStalling',
      'stall',
      'warning',
      /^\d+ jobs of queue stall:webhook stalled in the last 10s \(threshold 0\): their worker died or blocked its event loop mid-job\.$/,
    );
    await expectResolved('BullMQOrphanedActiveJobs', 'stall');
    // Exactly the one job the dead worker held stalled, and the new worker delivered it.
    expect(await exported('bullmq_jobs_stalled_total{prefix="stall", queue="webhook"}')).toBe(1);
    await waitFor(`the reclaimed job ${held.delivery} delivered`, () => target.delivered.has(held.delivery), 20_000);
    await expectResolved('BullMQJobsStalling', 'stall');
  });

  test('jobs waiting past the SLO threshold page the fast and slow wait-time burns; a keeping-up worker resolves them', async () => {
    startLoadgen('slo', '/ok', 4);
    // No worker yet: jobs wait well past the 1 s threshold.
    await waitFor(
      'the oldest slo job waiting 3 s',
      async () => (await stack.prometheus.query('bullmq_queue_oldest_waiting_age_seconds{prefix="slo"} > 3')).length > 0,
      30_000,
      200,
    );
    startWorker('slo');
    for (const [name, severity, burn] of [
      ['BullMQWaitTimeSLOFastBurn', 'critical', '20s/4s at 2x'],
      ['BullMQWaitTimeSLOSlowBurn', 'warning', '40s/8s at 1x'],
    ] as const) {
      const a = await expectPaged(
        name,
        'slo',
        severity,
        new RegExp(
          `^[\\d.]+% of the jobs of queue slo:webhook waited longer than 1s \\(objective: 90% of jobs taken within 1s; burn ${burn}; counted once 1 jobs were taken in the long window\\)\\.$`,
        ),
      );
      expect(a.labels.thresholds).toBe('default');
    }
    // The short windows see only the fast waits of a worker that keeps up.
    await expectResolved('BullMQWaitTimeSLOFastBurn', 'slo');
    await expectResolved('BullMQWaitTimeSLOSlowBurn', 'slo');
  });
});

/**
 * Panels of the committed dashboards that cannot return data here, and why. Only one: its recording rules
 * are those of the shipped burn windows (1h … 3d), which this stack replaces with test-sized ones; the same
 * panel built from the test settings is checked below with no exception.
 */
const COMMITTED_EXCEPTIONS = new Set(['queuelens-queue / Wait-time SLO: share of slow jobs']);

test('every dashboard query returns data from the running stack', async () => {
  const sets: Array<{ from: string; dashboards: Dashboard[]; exceptions: Set<string> }> = [
    { from: 'committed', dashboards: loadDashboards().map((d) => d.dashboard), exceptions: COMMITTED_EXCEPTIONS },
    // Built from the test settings by the same generator: the SLO panel reads the test's burn-window rules.
    { from: 'test settings', dashboards: Object.values(buildDashboards(testSettings)) as unknown as Dashboard[], exceptions: new Set() },
  ];
  const skipped = new Set<string>();
  let checked = 0;
  for (const { from, dashboards, exceptions } of sets) {
    for (const dashboard of dashboards) {
      for (const { panel, expr } of panelQueries(dashboard)) {
        if (exceptions.has(`${dashboard.uid} / ${panel}`)) {
          skipped.add(`${dashboard.uid} / ${panel}`);
          continue;
        }
        // Grafana's "All" for both variables, and one queue picked.
        for (const vars of [{}, { prefix: ['fail'], queue: ['webhook'] }] as Array<Record<string, string[]>>) {
          const q = substituteVariables(expr, vars);
          const result = await stack.prometheus.query(q);
          // A value, not just a series: 0/0 (NaN) would mean the panel draws nothing.
          expect(result.filter((r) => Number.isFinite(r.value)).length, `${from}: ${dashboard.uid} / ${panel}: ${q}`).toBeGreaterThan(0);
          checked += 1;
        }
      }
    }
  }
  expect(skipped).toEqual(COMMITTED_EXCEPTIONS);
  expect(checked).toBeGreaterThan(200);
});
