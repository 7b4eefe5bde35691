// `queuelens enqueue <queue> --data '<json>'`: adds one validated job and prints its id.
import type { Command } from 'commander';
import { addOptions, ConfigError } from '../../config/options.js';
import { enqueueOptions, resolveEnqueueConfig } from '../../config/enqueue-config.js';
import { postgresTarget } from '../../config/backend-options.js';
import { preparePostgres } from '../../jobs/postgres-store.js';
import { Producer } from '../../jobs/producer.js';
import { isQueueName, JobValidationError, QUEUE_NAMES, type JobInput, type QueueName } from '../../jobs/schemas.js';
import { assertRedisReachable } from '../../redis/connection.js';
import { shutdownTracing } from '../../tracing/state.js';

export function registerEnqueue(program: Command): void {
  const cmd = program
    .command('enqueue')
    .description('add one job to the email, webhook or export queue (validated like any producer)')
    .argument('<queue>', QUEUE_NAMES.join(', '));
  addOptions(cmd, enqueueOptions);
  cmd.action(async (queue: string, raw: Record<string, unknown>) => {
    const cfg = resolveEnqueueConfig(raw);
    if (!isQueueName(queue)) throw new ConfigError(`invalid queue ${JSON.stringify(queue)}: expected one of ${QUEUE_NAMES.join(', ')}`);
    if (cfg.data === undefined) throw new ConfigError('missing --data (QUEUELENS_JOB_DATA): the job data as JSON');
    const postgres = postgresTarget(cfg);
    if (postgres) await preparePostgres(postgres);
    else await assertRedisReachable({ url: cfg.redisUrl, clusterNodes: cfg.redisClusterNodes });
    const producer = new Producer(postgres ? { postgres } : { redisUrl: cfg.redisUrl, clusterNodes: cfg.redisClusterNodes, prefix: cfg.prefix });
    try {
      const job = await producer.enqueue(queue as QueueName, cfg.data as JobInput<QueueName>, {
        name: cfg.name,
        idempotencyKey: cfg.idempotencyKey,
        delay: cfg.delay === undefined ? undefined : Math.round(cfg.delay * 1000),
        attempts: cfg.attempts,
      });
      process.stdout.write(`${JSON.stringify({ queue, id: job.id, name: job.name })}\n`);
    } catch (err) {
      if (err instanceof JobValidationError) throw new ConfigError(`invalid --data (QUEUELENS_JOB_DATA): ${err.message}`);
      throw err;
    } finally {
      await producer.close();
      await shutdownTracing();
    }
  });
}
