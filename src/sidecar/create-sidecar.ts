// Assembles the sidecar over a backend (backends/create-backend.ts picks it by the configuration): discovery and
// collection loops, metrics, the queue board, the HTTP app. Used by the `queuelens sidecar` command and by tests
// in-process. start() begins the loops; close() undoes everything. Nothing here knows which store it reads.
import type { FastifyInstance } from 'fastify';
import { createBackend, type Backend } from '../backends/create-backend.js';
import { collectOnChange } from '../collector/change-plan.js';
import { isStale } from '../collector/freshness.js';
import type { QueueList } from '../domain/backend.js';
import type { CollectionSnapshot } from '../domain/queue-snapshot.js';
import type { SidecarConfig } from '../config/sidecar-config.js';
import { EVENT_BUCKETS_SECONDS } from '../events/buckets.js';
import type { QueueEventAccounting } from '../domain/event-accounting.js';
import { buildApp } from '../http/app.js';
import { assessHealth } from '../http/health.js';
import { startIntervalLoop, type IntervalLoop } from '../util/interval-loop.js';
import { stretchedInterval } from './stretch.js';
import type { Logger } from '../log/logger.js';
import { EventMetrics } from '../metrics/event-metrics.js';
import { Exposition } from '../metrics/exposition.js';
import { QueueMetrics } from '../metrics/queue-metrics.js';
import { queueId } from '../domain/queue-ref.js';
import { QueueBoard } from '../status/queue-board.js';
import { runCollectionCycle } from './collection-cycle.js';

export interface Sidecar {
  app: FastifyInstance;
  backend: Backend;
  discovery: QueueList;
  /** The last collection, if any. */
  snapshot(): CollectionSnapshot | undefined;
  start(): Promise<void>;
  /** Runs a discovery pass and a collection now (tests, admin). */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

/** `backend`: the store to read; by default the one the configuration names. */
export async function createSidecar(config: SidecarConfig, log: Logger, backend: Backend = createBackend(config, log)): Promise<Sidecar> {
  const { discovery, events: reader } = backend;
  // Process metrics as fresh as the queue gauges: the ~1 MB body of 1,000 queues is then rebuilt once per
  // collection, not once a second while scraped.
  const exposition = new Exposition(Math.max(1000, config.collectInterval * 1000));
  const metrics = new QueueMetrics(exposition);
  const board = new QueueBoard({
    collectIntervalSeconds: config.collectInterval,
    histogramBounds: EVENT_BUCKETS_SECONDS,
    bullBoardPath: config.adminToken ? '/admin/queues' : undefined,
  });
  let last: CollectionSnapshot | undefined;

  // Event accounting: one leader per shard reads the events and persists; every replica reads back and renders.
  const eventMetrics = reader ? new EventMetrics(exposition) : undefined;
  let readBackFailed = false;
  /** Renders the persisted accounting and hands it back (undefined when events are off or unreadable). */
  const readBack = async (): Promise<QueueEventAccounting[] | undefined> => {
    if (!reader || !eventMetrics || !backend.readAccounting) return undefined;
    let queues: QueueEventAccounting[] | undefined;
    try {
      queues = await backend.readAccounting();
      if (readBackFailed) log.info('event accounting read-back recovered');
      readBackFailed = false;
    } catch (err) {
      if (!readBackFailed) log.warn({ err: (err as Error).message }, 'cannot read the event accounting back; event metrics are absent until it works');
      readBackFailed = true;
    }
    await eventMetrics.update({ queues, leader: reader.isLeader, listed: new Set(discovery.queues().map(queueId)) });
    return queues;
  };

  let followed = -1;
  /** Seconds; above config.collectInterval while whole cycles take longer than it (sidecar/stretch.ts). */
  let interval = config.collectInterval;
  const onSnapshot = async (s: CollectionSnapshot): Promise<void> => {
    // A collection can find a new queue (a worker connection for it): the reader follows it at once.
    if (discovery.generation !== followed) {
      followed = discovery.generation;
      reader?.setQueues(discovery.queues());
    }
    if (!s.ok && (last === undefined || last.ok || last.error !== s.error)) log.warn({ err: s.error }, 'collection failed');
    if (s.ok && last !== undefined && !last.ok) log.info({ queues: s.queues.length }, 'collection recovered');
    last = s;
    await metrics.update(s);
  };
  const collectOnce = async (): Promise<void> => {
    const started = Date.now();
    const { snapshot: s } = await runCollectionCycle({ collector: backend.snapshots, board, readAccounting: readBack, onSnapshot });
    const cycleSeconds = (Date.now() - started) / 1000;
    const next = stretchedInterval(config.collectInterval, cycleSeconds, s.ok);
    if (next !== interval) {
      if (next > config.collectInterval)
        log.warn(
          { cycleSeconds, intervalSeconds: next, configured: config.collectInterval },
          'collection cycles outgrow --collect-interval; stretching the interval instead of serving stale data',
        );
      else log.info({ cycleSeconds, intervalSeconds: next }, 'collection cycles fit --collect-interval again');
    }
    interval = next;
    metrics.setCycle(cycleSeconds, interval);
  };
  let discoveryFailed = false;
  const discoverOnce = async (): Promise<void> => {
    try {
      await discovery.runPass();
      followed = discovery.generation;
      reader?.setQueues(discovery.queues());
      if (discoveryFailed) log.info({ queues: discovery.queues().length }, 'discovery recovered');
      discoveryFailed = false;
    } catch (err) {
      if (!discoveryFailed) log.warn({ err: (err as Error).message }, 'queue discovery failed; retrying on the next pass');
      discoveryFailed = true;
    }
  };

  const thresholds = { maxWaiting: config.healthMaxWaiting, maxOldestAgeSeconds: config.healthMaxOldestAge, minWorkers: config.healthMinWorkers };
  const app = await buildApp({
    log,
    renderMetrics: (om, gz) => {
      // The freshness rule of /health and /api/queues, with the same clock and interval, so they never disagree.
      if (isStale(last, Date.now(), interval) && metrics.markStale()) {
        // Event series come from the same hung Redis: no last values presented as current either.
        // Completes at once: without queues there is nothing to render in slices.
        void eventMetrics?.update({ queues: undefined, leader: reader?.isLeader ?? false });
      }
      eventMetrics?.setLeader(reader?.isLeader ?? false);
      return exposition.render(om, gz);
    },
    health: () => assessHealth(last, Date.now(), interval, thresholds),
    readiness: () => assessHealth(last, Date.now(), interval),
    queues: ({ history }) => board.response({ now: Date.now(), history, intervalSeconds: interval }),
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
  const loops: IntervalLoop[] = [];
  let stopPrompt: (() => void) | undefined;
  let started = false;
  let closed: Promise<void> | undefined;

  return {
    app,
    backend,
    discovery,
    snapshot: () => last,
    async start() {
      if (started) return;
      started = true;
      log.info(backend.where(), 'sidecar starting');
      await connect();
      // Discovery first so the first collection already sees the queues; a failed pass is retried on a short timer.
      await discoverOnce();
      await reader?.start();
      const collecting = startIntervalLoop(collectOnce, () => interval * 1000);
      loops.push(collecting);
      // A queue whose events moved is collected within about a second, not at the next interval.
      if (backend.onChange) stopPrompt = collectOnChange(backend.onChange, () => void collecting.runNow());
      const discoveryMs = config.discoveryInterval * 1000;
      loops.push(
        // A failed pass is retried within 5 s, whenever it fails; a good one waits the full interval.
        startIntervalLoop(discoverOnce, () => (discoveryFailed ? Math.min(discoveryMs, 5000) : discoveryMs), { runImmediately: false }),
      );
    },
    async refresh() {
      await connect();
      await discoverOnce();
      await collectOnce();
    },
    close() {
      closed ??= (async () => {
        // The reader closes alongside the loops: a collection stuck on a hung Redis can take its command
        // timeout twice, and the two waits in a row would not fit the 5 s shutdown deadline.
        // Its close releases the lease, so a standby replica takes over at once.
        // Each step says when it is done: a shutdown past its deadline then names the step it waited on.
        const step = async (name: string, run: () => Promise<unknown> | undefined) => {
          await run();
          log.debug({ step: name }, 'shutdown step done');
        };
        stopPrompt?.();
        const stopServing = async () => {
          await step('http server closed', () => app.close());
          await step('collection loops stopped', () => Promise.all(loops.map((l) => l.stop())));
        };
        await Promise.all([stopServing(), step('event reader closed', () => reader?.close())]);
        await backend.close();
      })();
      return closed;
    },
  };
}
