// Owns the whole demo in one process: the sidecar (status page, /metrics, admin surface with a generated
// token), the email, webhook and export workers delivering to local SMTP and webhook peers, the load generator
// running the demo mix (delays, retries, dead letters, duplicates, an occasional stall), and, when the binary
// is on PATH, a Prometheus loaded with the bundled alert rules. close() stops them in dependency order.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { resolveSidecarConfig } from '../config/sidecar-config.js';
import { resolveWorkerConfig } from '../config/worker-config.js';
import { resolveLoadgenConfig } from '../config/loadgen-config.js';
import { scenarioFor } from '../loadgen/loadgen-scenarios.js';
import { preparePostgres } from '../jobs/postgres-store.js';
import { Producer } from '../jobs/producer.js';
import { runLoadgen } from '../loadgen/run-loadgen.js';
import { QUEUE_NAMES } from '../jobs/schemas.js';
import type { Logger } from '../log/logger.js';
import { settings } from '../thresholds/monitoring-settings.js';
import { createSidecar } from '../sidecar/create-sidecar.js';
import { startWorkers } from '../workers/start-workers.js';
import { startDemoPeers } from './demo-peers.js';
import { startDemoPrometheus, type DemoPrometheus } from './demo-prometheus.js';
import { demoTempDir } from './demo-tmp.js';
import { DEMO_PG_OWN_SCHEMA, DEMO_PG_SCHEMA } from './postgres-demo-namespace.js';

/** The load mix of the demo; docker-compose.yml's loadgen runs the same (test/compose-failures.test.ts). */
export const DEMO_SCENARIO = 'demo';
/** Worker lock and stall-check timings of the demo (seconds): short, so the planned stall shows within seconds. */
export const DEMO_WORKER_TIMINGS = { lockDuration: '10', stalledInterval: '5' };

export interface DemoStackOptions {
  redisUrl: string;
  /** BullMQ on PostgreSQL: the demo's queues in the schema queuelens_demo of this database (the Redis URL is unused). */
  databaseUrl?: string;
  /** BullMQ prefix of the demo's queues, and where queuelens keeps its own state (`queuelens demo`: its own pair). */
  prefix?: string;
  ownPrefix?: string;
  host: string;
  /** 0 = any free port. */
  port: number;
  /** Jobs enqueued per second. */
  rate: number;
  /** Prometheus port; 0 = no Prometheus. */
  prometheusPort: number;
  collectIntervalSeconds?: number;
  logLevel: string;
  log: Logger;
}

export interface DemoStack {
  sidecarUrl: string;
  adminToken: string;
  smtpUrl: string;
  webhookUrl: string;
  prometheus?: DemoPrometheus;
  close(): Promise<void>;
}

export async function startDemoStack(o: DemoStackOptions): Promise<DemoStack> {
  const steps: Array<() => Promise<unknown>> = [];
  const close = async () => {
    for (const step of steps.splice(0).reverse()) await step().catch((err: Error) => o.log.warn({ err: err.message }, 'demo shutdown step failed'));
  };
  try {
    const peers = await startDemoPeers();
    steps.push(() => peers.close());

    const adminToken = randomBytes(18).toString('base64url');
    // On PostgreSQL every part names the same database and the demo's two schemas; the workers create BullMQ's.
    const store = o.databaseUrl
      ? { backend: 'postgres', databaseUrl: o.databaseUrl, pgSchema: DEMO_PG_SCHEMA, pgOwnSchema: DEMO_PG_OWN_SCHEMA }
      : { redisUrl: o.redisUrl };
    const postgres = o.databaseUrl ? { databaseUrl: o.databaseUrl, schema: DEMO_PG_SCHEMA, ownSchema: DEMO_PG_OWN_SCHEMA, migrate: true } : undefined;
    if (postgres) await preparePostgres(postgres);
    const sidecar = await createSidecar(
      resolveSidecarConfig({
        ...store,
        prefixes: o.prefix,
        ownPrefix: o.ownPrefix,
        host: o.host,
        // The config wants a real port; 0 (any free port) is only for listen() below.
        port: String(o.port || 9487),
        collectInterval: String(o.collectIntervalSeconds ?? 1),
        discoveryInterval: '2',
        adminToken,
        logLevel: o.logLevel,
      }),
      o.log,
    );
    steps.push(() => sidecar.close());
    await sidecar.app.listen({ port: o.port, host: o.host });
    const port = (sidecar.app.server.address() as AddressInfo).port;
    const host = o.host === '0.0.0.0' || o.host === '::' ? '127.0.0.1' : o.host;
    const sidecarUrl = `http://${host}:${port}`;
    await sidecar.start();

    const exportDir = demoTempDir('exports');
    steps.push(async () => rmSync(exportDir, { recursive: true, force: true }));
    const workers = await startWorkers(
      resolveWorkerConfig({
        ...store,
        prefix: o.prefix,
        ownPrefix: o.ownPrefix,
        smtpUrl: peers.smtpUrl,
        webhookSecret: randomBytes(18).toString('base64url'),
        // The demo receiver is on loopback, which the SSRF guard refuses unless allowed.
        webhookAllow: '127.0.0.1',
        exportDir,
        emailConcurrency: '5',
        webhookConcurrency: '10',
        exportConcurrency: '2',
        ...DEMO_WORKER_TIMINGS,
        shutdownTimeout: '10',
        logLevel: o.logLevel,
      }),
      QUEUE_NAMES,
      o.log,
    );
    steps.push(() => workers.close());

    const prometheus =
      o.prometheusPort > 0
        ? await startDemoPrometheus({ target: `${host}:${port}`, port: o.prometheusPort, job: settings.exporterJob, log: o.log })
        : undefined;
    if (prometheus) steps.splice(1, 0, () => prometheus.close()); // stopped after the sidecar it scrapes

    const loadgenCfg = resolveLoadgenConfig({
      ...store,
      prefix: o.prefix,
      webhookTarget: peers.webhookUrl,
      scenario: DEMO_SCENARIO,
      logLevel: o.logLevel,
    });
    const producer = new Producer(postgres ? { postgres } : { redisUrl: o.redisUrl, prefix: loadgenCfg.prefix });
    const abort = new AbortController();
    const loadgen = runLoadgen({
      producer,
      scenario: scenarioFor(DEMO_SCENARIO, loadgenCfg),
      rate: o.rate,
      durationSeconds: 7 * 86_400,
      log: o.log,
      postgres,
      redisUrl: o.redisUrl,
      prefix: loadgenCfg.prefix,
      signal: abort.signal,
    }).catch((err: Error) => o.log.error({ err: err.message }, 'demo load generator stopped'));
    steps.push(async () => {
      abort.abort();
      await loadgen;
      await producer.close();
    });

    return { sidecarUrl, adminToken, smtpUrl: peers.smtpUrl, webhookUrl: peers.webhookUrl, prometheus, close };
  } catch (err) {
    await close();
    throw err;
  }
}
