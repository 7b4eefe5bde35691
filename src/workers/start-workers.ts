// Starts the traced workers for the given queues in this process (`queuelens worker`, the demo) and returns
// one close() that lets in-flight jobs finish, then closes the SMTP pool and the producer.
import { postgresTarget } from '../config/backend-options.js';
import type { WorkerConfig } from '../config/worker-config.js';
import { preparePostgres } from '../jobs/postgres-store.js';
import { Producer } from '../jobs/producer.js';
import type { QueueName } from '../jobs/schemas.js';
import type { Logger } from '../log/logger.js';
import { createWorker, type ManagedWorker, type Processor } from './create-worker.js';
import { emailProcessor } from './email-processor.js';
import { exportProcessor, removeStaleExportTemps } from './export-processor.js';
import { NO_WEBHOOK_SECRET, webhookProcessor } from './webhook-processor.js';

export interface RunningWorkers {
  /** One entry per queue: its processing loop runs, its Redis connection is ready. */
  health(): Array<{ queue: QueueName; running: boolean; redis: boolean }>;
  /** health(), with `redis` true only if Redis also answered a PING within `deadlineMs` (a hung Redis is not ready). */
  readiness(deadlineMs: number): Promise<Array<{ queue: QueueName; running: boolean; redis: boolean }>>;
  close(): Promise<void>;
}

export async function startWorkers(cfg: WorkerConfig, queues: readonly QueueName[], log: Logger): Promise<RunningWorkers> {
  const postgres = postgresTarget(cfg);
  // On PostgreSQL: reachable, and BullMQ's schema there (created now with --migrate), or a sentence saying what to do.
  if (postgres) await preparePostgres(postgres);
  const producer = new Producer(postgres ? { postgres } : { redisUrl: cfg.redisUrl, clusterNodes: cfg.redisClusterNodes, prefix: cfg.prefix });
  const closers: Array<() => unknown> = [];
  const processors: { [Q in QueueName]: () => Processor<Q> } = {
    email: () => {
      const p = emailProcessor({ smtpUrl: cfg.smtpUrl, from: cfg.smtpFrom, maxConnections: cfg.emailConcurrency });
      closers.push(p.close);
      return p.process;
    },
    webhook: () =>
      webhookProcessor({ secret: cfg.webhookSecret, timeoutMs: cfg.webhookTimeout * 1000, allow: cfg.webhookAllow, namespace: postgres?.schema }).process,
    export: () => exportProcessor({ dir: cfg.exportDir, maxBytes: cfg.exportMaxBytes, producer }).process,
  };
  const settings = {
    email: { concurrency: cfg.emailConcurrency, rateLimit: cfg.emailRateLimit },
    webhook: { concurrency: cfg.webhookConcurrency, rateLimit: cfg.webhookRateLimit },
    export: { concurrency: cfg.exportConcurrency, rateLimit: cfg.exportRateLimit },
  };
  const workers: ManagedWorker[] = queues.map((queue) =>
    createWorker({
      queue,
      process: processors[queue]() as Processor<QueueName>,
      postgres,
      redisUrl: cfg.redisUrl,
      clusterNodes: cfg.redisClusterNodes,
      prefix: cfg.prefix,
      ownPrefix: cfg.ownPrefix,
      log,
      ...settings[queue],
      lockDurationMs: cfg.lockDuration * 1000,
      stalledIntervalMs: cfg.stalledInterval * 1000,
    }),
  );
  if (queues.includes('webhook') && !cfg.webhookSecret) {
    // Not fatal: jobs may bring their own secret. Every one that does not is dead-lettered, with this reason.
    log.warn({ queue: 'webhook', reason: NO_WEBHOOK_SECRET }, 'WEBHOOK_SECRET is not set: webhook jobs without a secret of their own will be dead-lettered');
  }
  if (queues.includes('export')) {
    // Before this process writes any: what a killed predecessor was writing would otherwise stay for good.
    const removed = await removeStaleExportTemps(cfg.exportDir);
    if (removed > 0) log.info({ queue: 'export', removed }, 'removed temp files of exports a stopped worker left unfinished');
  }
  await Promise.all(workers.map((w) => w.start()));
  log.info({ queues, backend: cfg.backend, ...(postgres ? { schema: postgres.schema } : {}) }, 'workers started');
  let closed: Promise<void> | undefined;
  return {
    health: () => workers.map((w) => w.health()),
    readiness: (deadlineMs) =>
      Promise.all(
        workers.map(async (w) => {
          const h = w.health();
          return { ...h, redis: h.redis && (await w.redisAnswers(deadlineMs)) };
        }),
      ),
    close() {
      closed ??= (async () => {
        await Promise.all(workers.map((w) => w.close()));
        for (const c of closers) c();
        await producer.close();
      })();
      return closed;
    },
  };
}
