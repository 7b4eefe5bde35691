// Starts a real Prometheus and a real Alertmanager (Debian packages) on free loopback ports with temporary
// storage, for end-to-end tests of the rules and dashboards. The Prometheus config is derived from the repo's
// prometheus.yml (targets swapped for loopback ones, short intervals); the Alertmanager config from the example
// in deploy/alertmanager/ (receivers redirected to a webhook receiver the test owns, short group timings), so
// the tests exercise the routing and inhibitions users deploy. stop() ends both and removes their files.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { watchChild } from '../../src/util/watch-child.js';
import { parse, stringify } from 'yaml';
import { buildRuleGroups, renderRulesYaml } from '../../src/monitoring/alert-rules.js';
import type { MonitoringSettings } from '../../src/thresholds/monitoring-settings.js';
import { waitFor } from './bullmq.js';
import { requireBinary } from './prometheus-binaries.js';
import { freePort } from './redis-server.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** One alert as Alertmanager's webhook posts it. */
export interface NotifiedAlert {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface WebhookNotification {
  /** Request path: tells the receivers of the example config apart (/on-call, /triage). */
  path: string;
  status: 'firing' | 'resolved';
  alerts: NotifiedAlert[];
}

export interface WebhookReceiver {
  url: string;
  notifications: WebhookNotification[];
  /** Resolves with the first notified alert matching, polling until `timeoutMs`. */
  waitForAlert(match: (a: NotifiedAlert, n: WebhookNotification) => boolean, timeoutMs?: number): Promise<NotifiedAlert>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const notifications: WebhookNotification[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Omit<WebhookNotification, 'path'>;
        notifications.push({ path: req.url ?? '/', status: body.status, alerts: body.alerts });
        res.writeHead(200).end();
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    notifications,
    waitForAlert: (match, timeoutMs = 30_000) =>
      waitFor(
        'a matching alert notification',
        () => {
          for (const n of notifications) for (const a of n.alerts) if (match(a, n)) return a;
          return undefined;
        },
        timeoutMs,
        100,
      ),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface Daemon {
  proc: ChildProcess;
  output: () => string;
}

function launch(bin: string, args: string[]): Daemon {
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // A test file killed on timeout must not leave Prometheus or Alertmanager behind.
  watchChild(proc);
  let out = '';
  const keep = (c: Buffer): void => {
    out = (out + c.toString('utf8')).slice(-20_000);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  return { proc, output: () => out };
}

async function waitReady(name: string, url: string, d: Daemon): Promise<void> {
  await waitFor(
    `${name} at ${url}`,
    async () => {
      if (d.proc.exitCode !== null) throw new Error(`${name} exited with code ${d.proc.exitCode}:\n${d.output()}`);
      const r = await fetch(`${url}/-/ready`).catch(() => undefined);
      return r?.ok;
    },
    20_000,
    100,
  );
}

async function terminate(d: Daemon): Promise<void> {
  const { proc } = d;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const kill = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    kill.unref();
    proc.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

/** Launches a daemon on a free loopback port and waits for /-/ready; stop() ends it and removes `dir`. */
async function startDaemon(name: string, bin: string, dir: string, args: (port: number) => string[]): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const d = launch(bin, args(port));
  const cleanup = async (): Promise<void> => {
    await terminate(d);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(name, url, d);
  } catch (err) {
    await cleanup();
    throw err;
  }
  let stopped = false;
  return {
    url,
    async stop() {
      if (stopped) return;
      stopped = true;
      await cleanup();
    },
  };
}

export interface AlertmanagerOptions {
  /** Where every receiver of the example config sends (its path is kept). */
  receiverUrl: string;
  /** Base config; default: deploy/alertmanager/alertmanager.yml. */
  configFile?: string;
  groupWait?: string;
  groupInterval?: string;
  repeatInterval?: string;
}

export interface RunningAlertmanager {
  url: string;
  stop(): Promise<void>;
}

interface Route {
  group_wait?: string;
  group_interval?: string;
  repeat_interval?: string;
  routes?: Route[];
}

export async function startAlertmanager(opts: AlertmanagerOptions): Promise<RunningAlertmanager> {
  const bin = requireBinary('prometheus-alertmanager', 'alertmanager');
  const dir = mkdtempSync(join(tmpdir(), 'queuelens-alertmanager-'));
  const config = parse(readFileSync(opts.configFile ?? join(root, 'deploy/alertmanager/alertmanager.yml'), 'utf8')) as {
    route: Route;
    receivers: Array<{ webhook_configs?: Array<{ url: string }> }>;
  };
  const shorten = (r: Route): void => {
    r.group_wait = opts.groupWait ?? '1s';
    r.group_interval = opts.groupInterval ?? '1s';
    r.repeat_interval = opts.repeatInterval ?? '1h';
    for (const child of r.routes ?? []) shorten(child);
  };
  shorten(config.route);
  for (const r of config.receivers) for (const w of r.webhook_configs ?? []) w.url = `${opts.receiverUrl}${new URL(w.url).pathname}`;
  writeFileSync(join(dir, 'alertmanager.yml'), stringify(config));
  return startDaemon('alertmanager', bin, dir, (port) => [
    `--config.file=${join(dir, 'alertmanager.yml')}`,
    `--storage.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    // No gossip: a lone test instance must not open (or collide on) the cluster port.
    '--cluster.listen-address=',
  ]);
}

export interface PrometheusOptions {
  /** Scrape targets per job name (host:port); jobs of the base config not named here are dropped. */
  jobs: Record<string, string[]>;
  /** Rule files (absolute paths) to load instead of the base config's. */
  ruleFiles: string[];
  alertmanagerUrl?: string;
  scrapeInterval?: string;
  evaluationInterval?: string;
  /** Base config; default: the repo's prometheus.yml. */
  configFile?: string;
  /** More command-line flags, e.g. --enable-feature=native-histograms. */
  extraArgs?: string[];
}

/** A native histogram sample as the query API renders it. */
export interface NativeHistogramSample {
  count: string;
  sum: string;
  /** [boundary rule, lower, upper, count] per populated bucket. */
  buckets?: Array<[number, string, string, string]>;
}

export interface InstantSample {
  metric: Record<string, string>;
  value: number;
}

export interface RunningPrometheus {
  url: string;
  /** Instant query; throws with Prometheus' error text on a bad query. */
  query(expr: string): Promise<InstantSample[]>;
  /** Instant query, the result as the API returns it (a native histogram sample has `histogram`, not `value`). */
  queryRaw(expr: string): Promise<Array<{ metric: Record<string, string>; value?: [number, string]; histogram?: [number, NativeHistogramSample] }>>;
  /** Alerts as the rule manager sees them (pending and firing). */
  alerts(): Promise<Array<{ labels: Record<string, string>; state: string; value: string }>>;
  stop(): Promise<void>;
}

interface ScrapeConfig {
  job_name: string;
  scrape_interval?: string;
  static_configs: Array<{ targets: string[] }>;
}

export async function startPrometheus(opts: PrometheusOptions): Promise<RunningPrometheus> {
  const bin = requireBinary('prometheus');
  const dir = mkdtempSync(join(tmpdir(), 'queuelens-prometheus-'));
  const base = parse(readFileSync(opts.configFile ?? join(root, 'prometheus.yml'), 'utf8')) as {
    global?: Record<string, string>;
    rule_files?: string[];
    alerting?: unknown;
    scrape_configs: ScrapeConfig[];
  };
  const scrape = opts.scrapeInterval ?? '1s';
  base.global = { ...base.global, scrape_interval: scrape, scrape_timeout: scrape, evaluation_interval: opts.evaluationInterval ?? '1s' };
  base.rule_files = opts.ruleFiles;
  base.scrape_configs = Object.entries(opts.jobs).map(([job, targets]) => {
    const from = base.scrape_configs.find((c) => c.job_name === job);
    return { ...from, job_name: job, scrape_interval: scrape, static_configs: [{ targets }] };
  });
  if (opts.alertmanagerUrl) base.alerting = { alertmanagers: [{ static_configs: [{ targets: [new URL(opts.alertmanagerUrl).host] }] }] };
  else delete base.alerting;
  writeFileSync(join(dir, 'prometheus.yml'), stringify(base));
  const { url, stop } = await startDaemon('prometheus', bin, dir, (port) => [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    // Send firing alerts again every second instead of every minute, so resolutions and retries show quickly.
    '--rules.alert.resend-delay=1s',
    ...(opts.extraArgs ?? []),
  ]);
  const api = async <T>(path: string): Promise<T> => {
    const r = await fetch(`${url}${path}`);
    const body = (await r.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? r.status}`);
    return body.data;
  };
  return {
    url,
    stop,
    async query(expr) {
      const data = await api<{ result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
      return data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
    },
    async queryRaw(expr) {
      type Raw = Array<{ metric: Record<string, string>; value?: [number, string]; histogram?: [number, NativeHistogramSample] }>;
      return (await api<{ result: Raw }>(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result;
    },
    async alerts() {
      return (await api<{ alerts: Array<{ labels: Record<string, string>; state: string; value: string }> }>('/api/v1/alerts')).alerts;
    },
  };
}

/** The wait-time SLO burn windows scaled to seconds, for end-to-end tests (the shipped ones span 1 h to 3 d). */
export const TEST_BURN_RATES: MonitoringSettings['burnRates'] = {
  fast: [{ long: '20s', short: '4s', factor: 2 }],
  slow: [{ long: '40s', short: '8s', factor: 1 }],
  fastFor: '1s',
  slowFor: '1s',
};

export interface MonitoringStack {
  receiver: WebhookReceiver;
  alertmanager: RunningAlertmanager;
  prometheus: RunningPrometheus;
  stop(): Promise<void>;
}

/**
 * The whole alerting path for a test: rules generated from `settings` (give them test-sized durations),
 * Prometheus scraping `targets` under the exporter job, Alertmanager with the example routing, and a webhook
 * receiver standing in for on-call.
 */
export async function startMonitoringStack(settings: MonitoringSettings, targets: string[]): Promise<MonitoringStack> {
  const dir = mkdtempSync(join(tmpdir(), 'queuelens-rules-'));
  const rules = join(dir, 'queuelens.rules.yml');
  writeFileSync(rules, renderRulesYaml(buildRuleGroups(settings)));
  const started: Array<{ stop(): Promise<void> }> = [];
  const stop = async (): Promise<void> => {
    for (const s of started.splice(0).reverse()) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const receiver = await startWebhookReceiver();
    started.push({ stop: () => receiver.close() });
    const alertmanager = await startAlertmanager({ receiverUrl: receiver.url });
    started.push(alertmanager);
    const prometheus = await startPrometheus({ jobs: { [settings.exporterJob]: targets }, ruleFiles: [rules], alertmanagerUrl: alertmanager.url });
    started.push(prometheus);
    return { receiver, alertmanager, prometheus, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
