// In-process queuelens workers against a test Redis (or BullMQ on a test PostgreSQL: WorkerHarness.postgres), with
// log capture, closed together at the end.
import { Writable } from 'node:stream';
import { Queue, type Job } from 'bullmq';
import { Producer } from '../../src/jobs/producer.js';
import { postgresQueue, type PostgresTarget } from '../../src/jobs/postgres-store.js';
import type { QueueName } from '../../src/jobs/schemas.js';
import { createLogger, type Logger } from '../../src/log/logger.js';
import { OWN_PREFIX_DEFAULT } from '../../src/redis/keys.js';
import { createWorker, type CreateWorkerOptions, type ManagedWorker, type Processor } from '../../src/workers/create-worker.js';
import type { DeadLetterRecord } from '../../src/dead-letters/dead-letters.js';
import type { TestRedis } from './redis-server.js';

export class WorkerHarness {
  readonly logLines: string[] = [];
  readonly log: Logger;
  readonly producer: Producer;
  private readonly workers: ManagedWorker[] = [];
  private readonly queues: Queue[] = [];
  private readonly pgQueues = new Map<string, Queue>();
  private readonly closers: Array<() => unknown> = [];

  /** On BullMQ's PostgreSQL backend; `redis` is then unused. */
  static postgres(target: PostgresTarget): WorkerHarness {
    return new WorkerHarness(undefined as unknown as TestRedis, target);
  }

  constructor(
    readonly redis: TestRedis,
    readonly pg?: PostgresTarget,
  ) {
    const lines = this.logLines;
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    this.log = createLogger({ level: 'debug', destination: stream });
    this.producer = new Producer(pg ? { postgres: pg } : { redisUrl: redis.url, prefix: 'bull' });
  }

  async start<Q extends QueueName>(queue: Q, process: Processor<Q>, opts: Partial<CreateWorkerOptions<Q>> = {}): Promise<ManagedWorker<Q>> {
    const w = createWorker({
      queue,
      process,
      postgres: this.pg,
      redisUrl: this.redis?.url ?? '',
      prefix: 'bull',
      ownPrefix: OWN_PREFIX_DEFAULT,
      log: this.log,
      concurrency: 4,
      ...opts,
    });
    this.workers.push(w as unknown as ManagedWorker);
    await w.start();
    return w;
  }

  onClose(fn: () => unknown): void {
    this.closers.push(fn);
  }

  /** A plain BullMQ queue handle (no meta update), for reading state. */
  queue(name: string): Queue {
    // On PostgreSQL each Queue has a pool of its own: one per name, or a test polling for a minute runs out of connections.
    const cached = this.pg ? this.pgQueues.get(name) : undefined;
    if (cached) return cached;
    const q = this.pg
      ? postgresQueue(this.pg, name, { skipMetasUpdate: true })
      : new Queue(name, { connection: { host: '127.0.0.1', port: this.redis.port, maxRetriesPerRequest: null }, skipMetasUpdate: true });
    this.queues.push(q);
    if (this.pg) this.pgQueues.set(name, q);
    return q;
  }

  async dlqJobs(queue: string): Promise<Array<Job<DeadLetterRecord>>> {
    return (await this.queue(`${queue}-dlq`).getJobs(['wait'])) as Array<Job<DeadLetterRecord>>;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
    for (const c of this.closers) await c();
    await this.producer.close();
    await Promise.all(this.queues.map((q) => q.close()));
  }
}

/** Fast retries for tests: the defaults' seconds-to-hours backoff would outlast any test. */
export const fastRetry = (attempts: number, type = 'exponential') => ({ attempts, backoff: { type, delay: 20 } });
