// `queuelens worker <email|webhook|export|all>`: runs the traced workers until SIGTERM, then lets in-flight
// jobs finish within --shutdown-timeout.
import type { Command } from 'commander';
import { ConfigError, addOptions } from '../../config/options.js';
import { resolveWorkerConfig, workerOptions, type WorkerConfig } from '../../config/worker-config.js';
import { isQueueName, QUEUE_NAMES, type QueueName } from '../../jobs/schemas.js';
import { installShutdown } from '../../shutdown/shutdown.js';
import { createLogger } from '../../log/logger.js';
import { shutdownTracing } from '../../tracing/state.js';
import { startHealthServer } from '../../workers/health-server.js';
import { startWorkers } from '../../workers/start-workers.js';

export function parseQueueList(raw: string): QueueName[] {
  if (raw === 'all') return [...QUEUE_NAMES];
  const list = raw.split(',').map((s) => s.trim());
  for (const q of list)
    if (!isQueueName(q)) throw new ConfigError(`invalid queue ${JSON.stringify(q)}: expected ${QUEUE_NAMES.join(', ')} or all (comma-separated)`);
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
  const log = createLogger({ level: cfg.logLevel, name: 'queuelens-worker' });
  const workers = await startWorkers(cfg, queues, log);
  const health = cfg.healthPort > 0 ? await startHealthServer(workers, { host: cfg.healthHost, port: cfg.healthPort }) : undefined;
  if (health) log.info({ port: health.port }, 'health port: /livez, /readyz');
  installShutdown(
    [
      { name: 'workers', run: () => workers.close() },
      { name: 'health', run: () => health?.close() },
      { name: 'tracing', run: shutdownTracing },
    ],
    { log, timeoutMs: cfg.shutdownTimeout * 1000 },
  );
}
