// Assembles the sidecar over a backend (backends/create-backend.ts picks it by the configuration): its loops,
// metrics and queue board, and the HTTP app. Used by the `queuelens sidecar` command and by tests in-process.
// start() begins the loops; close() undoes everything. Nothing here knows which store it reads, and no rule lives
// here: freshness is collector/freshness.ts, expiry sidecar-metrics.ts, the cycle and its interval sidecar-loops.ts.
import type { FastifyInstance } from 'fastify';
import { createBackend, type Backend } from '../backends/create-backend.js';
import type { SidecarConfig } from '../config/sidecar-config.js';
import type { QueueList } from '../domain/backend.js';
import type { CollectionSnapshot } from '../domain/queue-snapshot.js';
import { EVENT_BUCKETS_SECONDS } from '../events/buckets.js';
import { buildApp, closeApp } from '../http/app.js';
import { assessHealth } from '../http/health.js';
import type { Logger } from '../log/logger.js';
import { QueueBoard } from '../status/queue-board.js';
import { SidecarLoops } from './sidecar-loops.js';
import { SidecarMetrics } from './sidecar-metrics.js';

export interface Sidecar {
  app: FastifyInstance;
  backend: Backend;
  discovery: QueueList;
  /** The last collection, if any. */
  snapshot(): CollectionSnapshot | undefined;
  start(): Promise<void>;
  /** Runs a discovery pass and a full collection now, every queue and worker read (tests, admin). */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

/** `given`: the store to read; by default the one the configuration names. */
export async function createSidecar(config: SidecarConfig, log: Logger, given?: Backend): Promise<Sidecar> {
  const backend = given ?? (await createBackend(config, log));
  const { discovery, events } = backend;
  const metrics = new SidecarMetrics({ collectIntervalSeconds: config.collectInterval, events, histograms: config.histograms });
  const board = new QueueBoard({
    collectIntervalSeconds: config.collectInterval,
    histogramBounds: EVENT_BUCKETS_SECONDS,
    bullBoardPath: config.adminToken ? '/admin/queues' : undefined,
  });
  const loops = new SidecarLoops({
    backend,
    board,
    metrics,
    collectIntervalSeconds: config.collectInterval,
    discoveryIntervalSeconds: config.discoveryInterval,
    log,
  });

  const store = backend.kind === 'postgres' ? 'PostgreSQL' : 'Redis';
  const thresholds = { maxWaiting: config.healthMaxWaiting, maxOldestAgeSeconds: config.healthMaxOldestAge, minWorkers: config.healthMinWorkers, store };
  // Each look at the data paces how often busy queues are brought up to date (collector/demand-pace.ts).
  const looked = (): void => backend.requested?.();
  const app = await buildApp({
    log,
    renderMetrics: (om, gz) => {
      looked();
      return metrics.render(om, gz);
    },
    // The freshness rule, with the interval in force, as /metrics' expiry and the board apply it.
    health: () => assessHealth(loops.snapshot, Date.now(), loops.intervalSeconds, thresholds),
    readiness: () => assessHealth(loops.snapshot, Date.now(), loops.intervalSeconds, { store }),
    queues: ({ history }) => {
      looked();
      return board.response({ now: Date.now(), history, intervalSeconds: loops.intervalSeconds });
    },
    queuesJson: ({ history }) => {
      looked();
      return board.responseJson({ now: Date.now(), history, intervalSeconds: loops.intervalSeconds });
    },
    trustProxy: config.trustProxy,
    admin:
      config.adminToken && backend.admin
        ? {
            token: config.adminToken,
            writes: config.adminWrites,
            connection: backend.admin,
            prefixes: config.prefixes,
            ownPrefix: config.ownPrefix,
            queues: () => discovery.queues(),
            log,
          }
        : undefined,
  });

  // Nothing connects until start(); a store that is down at start is retried in the background.
  const connect = (): Promise<void> =>
    backend.connect().catch((err: Error) => log.warn({ err: err.message }, `${backend.kind} not reachable yet; retrying in the background`));
  let started = false;
  let closed: Promise<void> | undefined;

  return {
    app,
    backend,
    discovery,
    snapshot: () => loops.snapshot,
    async start() {
      if (started) return;
      started = true;
      log.info(backend.where(), 'sidecar starting');
      await connect();
      // Discovery first so the first collection already sees the queues.
      await loops.discoverOnce();
      await events?.start();
      loops.start();
    },
    async refresh() {
      await connect();
      await loops.discoverOnce();
      await loops.collectOnce(true);
    },
    close() {
      closed ??= (async () => {
        // The follower closes alongside the loops: a collection stuck on a hung store can take its command
        // timeout twice, and the two waits in a row would not fit the 5 s shutdown deadline.
        // Its close releases the lease, so a standby replica takes over at once.
        // Each step says when it is done: a shutdown past its deadline then names the step it waited on.
        const step = async (name: string, run: () => Promise<unknown> | undefined) => {
          await run();
          log.debug({ step: name }, 'shutdown step done');
        };
        const stopServing = async () => {
          await step('http server closed', () => closeApp(app));
          await step('collection loops stopped', () => loops.stop());
        };
        await Promise.all([stopServing(), step('event reader closed', () => events?.close())]);
        metrics.close();
        await backend.close();
      })();
      return closed;
    },
  };
}
