// `queuelens worker <email|webhook|export|all>`: runs the traced workers until SIGTERM, then lets in-flight
// jobs finish within --shutdown-timeout.
import type { Command } from 'commander';
import { ConfigError, addOptions } from '../../config/options.js';
import { resolveWorkerConfig, workerOptions, type WorkerConfig } from '../../config/worker-config.js';
import { Producer } from '../../jobs/producer.js';
import { isQueueName, QUEUE_NAMES, type QueueName } from '../../jobs/schemas.js';
import { installShutdown } from '../../lifecycle/shutdown.js';
import { createLogger } from '../../log/logger.js';
import { traceLogFields } from '../../tracing/spans.js';
import { shutdownTracing } from '../../tracing/state.js';
import { createWorker, type ManagedWorker, type Processor } from '../../workers/create-worker.js';
import { emailProcessor } from '../../workers/email-processor.js';
import { exportProcessor } from '../../workers/export-processor.js';
import { webhookProcessor } from '../../workers/webhook-processor.js';

export function parseQueueList(raw: string): QueueName[] {
  if (raw === 'all') return [...QUEUE_NAMES];
  const list = raw.split(',').map((s) => s.trim());
  for (const q of list) if (!isQueueName(q)) throw new ConfigError(`invalid queue ${JSON.stringify(q)}: expected ${QUEUE_NAMES.join(', ')} or all (comma-separated)`);
  return [...new Set(list)] as QueueName[];
}

export function registerWorker(program: Command): void {
  const cmd = program
    .command('worker')
    .description('process jobs of the email, webhook and/or export queues, dead-lettering final failures')
    .argument('[queues]', `comma-separated queues (${QUEUE_NAMES.join(', ')}) or all`, 'all');
  addOptions(cmd, workerOptions);
  cmd.action(async (queues: string, raw: Record<string, unknown>) => {
    const cfg = resolveWorkerConfig(raw);
    await runWorkers(cfg, parseQueueList(queues));
  });
}

async function runWorkers(cfg: WorkerConfig, queues: QueueName[]): Promise<void> {
  const log = createLogger({ level: cfg.logLevel, name: 'queuelens-worker', mixin: traceLogFields });
  const producer = new Producer({ redisUrl: cfg.redisUrl, prefix: cfg.prefix });
  const closers: Array<() => unknown> = [];
  const processors: { [Q in QueueName]: () => Processor<Q> } = {
    email: () => {
      const p = emailProcessor({ smtpUrl: cfg.smtpUrl, from: cfg.smtpFrom, maxConnections: cfg.emailConcurrency });
      closers.push(p.close);
      return p.process;
    },
    webhook: () => webhookProcessor({ secret: cfg.webhookSecret, timeoutMs: cfg.webhookTimeout * 1000, allow: cfg.webhookAllow }).process,
    export: () => exportProcessor({ dir: cfg.exportDir, producer }).process,
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
      redisUrl: cfg.redisUrl,
      prefix: cfg.prefix,
      log,
      ...settings[queue],
      lockDurationMs: cfg.lockDuration * 1000,
      stalledIntervalMs: cfg.stalledInterval * 1000,
    }),
  );
  installShutdown(
    [
      { name: 'workers', run: () => Promise.all(workers.map((w) => w.close())) },
      { name: 'smtp', run: () => closers.forEach((c) => c()) },
      { name: 'producer', run: () => producer.close() },
      { name: 'tracing', run: shutdownTracing },
    ],
    { log, timeoutMs: cfg.shutdownTimeout * 1000 },
  );
  await Promise.all(workers.map((w) => w.start()));
  log.info({ queues }, 'workers started');
}
