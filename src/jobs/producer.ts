// Owns enqueueing: validates data against the queue's schema before anything reaches the store (Redis or PostgreSQL), applies the
// per-queue defaults, turns an idempotency key into a deterministic job id, and traces the add.
import { createHash } from 'node:crypto';
import { Queue, type Job, type JobsOptions } from 'bullmq';
import { createRedis, type RedisClient } from '../redis/connection.js';
import { postgresQueue, type PostgresTarget } from './postgres-store.js';
import { assertClusterPrefix } from '../redis/slots.js';
import { activeTelemetry } from '../tracing/state.js';
import { queueOptions, withJobDefaults } from './queue-defaults.js';
import { validateJob, type JobData, type JobInput, type QueueName } from './schemas.js';

export type ProducerOptions =
  | {
      redisUrl: string;
      /** Redis Cluster seed nodes (`host:port`); the prefix must then carry a hash tag such as `{bull}`. */
      clusterNodes?: readonly string[];
      prefix?: string;
      postgres?: undefined;
    }
  /** BullMQ on PostgreSQL (`--backend postgres`). */
  | { postgres: PostgresTarget };

export interface EnqueueOptions extends Omit<JobsOptions, 'jobId'> {
  /** Job name; defaults to the queue name (email jobs: the template). */
  name?: string;
  /** Enqueueing twice with the same key yields one job (until that job is removed by retention). */
  idempotencyKey?: string;
}

/** Deterministic job id for an idempotency key; hashed so any key is a valid, non-numeric BullMQ id. */
export function idempotentJobId(key: string): string {
  return `idem-${createHash('sha256').update(key).digest('hex').slice(0, 40)}`;
}

export class Producer {
  private readonly connection?: RedisClient;
  private readonly queues = new Map<string, Queue>();
  private closed?: Promise<void>;

  constructor(private readonly opts: ProducerOptions) {
    if (opts.postgres) return;
    if (opts.clusterNodes?.length) assertClusterPrefix(opts.prefix ?? 'bull');
    this.connection = createRedis({ url: opts.redisUrl, clusterNodes: opts.clusterNodes, name: 'queuelens:producer', maxRetriesPerRequest: null });
  }

  /** The BullMQ queue object (created once, with queuelens's stream retention). */
  queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = this.opts.postgres
        ? postgresQueue(this.opts.postgres, name, { telemetry: activeTelemetry() })
        : new Queue(name, queueOptions({ connection: this.connection!, prefix: this.opts.prefix, telemetry: activeTelemetry() }));
      this.queues.set(name, q);
    }
    return q;
  }

  /** Generic producer: validates `data` for `queue` and adds it; throws JobValidationError naming the field. */
  async enqueue<Q extends QueueName>(queue: Q, data: JobInput<Q>, opts: EnqueueOptions = {}): Promise<Job<JobData<Q>>> {
    const valid = validateJob(queue, data);
    const { name, idempotencyKey, ...jobOpts } = opts;
    const jobName = name ?? (queue === 'email' ? (valid as JobData<'email'>).template : queue);
    return this.queue(queue).add(jobName, valid, {
      ...withJobDefaults(queue, jobOpts),
      ...(idempotencyKey !== undefined ? { jobId: idempotentJobId(idempotencyKey) } : {}),
    }) as Promise<Job<JobData<Q>>>;
  }

  enqueueEmail(data: JobInput<'email'>, opts?: EnqueueOptions): Promise<Job<JobData<'email'>>> {
    return this.enqueue('email', data, opts);
  }

  enqueueWebhook(data: JobInput<'webhook'>, opts?: EnqueueOptions): Promise<Job<JobData<'webhook'>>> {
    return this.enqueue('webhook', data, opts);
  }

  enqueueExport(data: JobInput<'export'>, opts?: EnqueueOptions): Promise<Job<JobData<'export'>>> {
    return this.enqueue('export', data, opts);
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      await Promise.all([...this.queues.values()].map((q) => q.close()));
      this.connection?.disconnect();
    })();
    return this.closed;
  }
}
