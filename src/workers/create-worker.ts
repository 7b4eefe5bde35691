// Owns what every queuelens worker does around its processor: re-validating job data, keeping personal
// data out of stored errors, retry timing (including a receiver's Retry-After), dead-lettering on the final
// failure, and a close() that lets in-flight jobs and dead-letter copies finish.
import { hostname } from 'node:os';
import { ROOT_CONTEXT, type Context } from '@opentelemetry/api';
import { UnrecoverableError, type Job, type Worker } from 'bullmq';
import type { RateLimit } from '../config/worker-config.js';
import { dlqName } from '../jobs/queue-defaults.js';
import { validateJob, type JobData, type QueueName } from '../jobs/schemas.js';
import type { Logger } from '../log/logger.js';
import { redactString } from '../log/redact.js';
import { startConsumerSpan, type ConsumerSpan } from '../tracing/consumer-span.js';
import { tracingEnabled } from '../tracing/state.js';
import { noteFailedAttempt, type DeadLetterQueue } from '../dead-letters/dead-letter-record.js';
import type { PostgresTarget } from '../jobs/postgres-store.js';
import { PostgresWorkerStore, RedisWorkerStore, type WorkerStore } from './worker-store.js';

export interface ProcessContext {
  /** The attempt's logger: queue, job id, attempt and, when tracing, trace_id/span_id of the consumer span. */
  readonly log: Logger;
  /**
   * The consumer span's context (ROOT_CONTEXT when tracing is off). Pass it to withSpan() and wrap enqueues in
   * `context.with(ctx.trace, …)`: worker processes do not carry it across `await` by themselves.
   */
  readonly trace: Context;
  readonly signal?: AbortSignal;
}

/** Builds the attempt's child logger on first use: most jobs never log. */
class AttemptContext implements ProcessContext {
  private logger?: Logger;
  constructor(
    private readonly parentLog: Logger,
    private readonly bindings: Record<string, unknown>,
    private readonly span: ConsumerSpan | undefined,
    readonly signal?: AbortSignal,
  ) {}
  get trace(): Context {
    return this.span?.context ?? ROOT_CONTEXT;
  }
  get log(): Logger {
    this.logger ??= this.parentLog.child({ ...this.bindings, ...this.span?.logFields() });
    return this.logger;
  }
}

export type Processor<Q extends QueueName> = (job: Job<JobData<Q>>, data: JobData<Q>, ctx: ProcessContext) => Promise<unknown>;

export interface CreateWorkerOptions<Q extends QueueName> {
  queue: Q;
  process: Processor<Q>;
  /** BullMQ on PostgreSQL (`--backend postgres`): then the Redis options are not used. */
  postgres?: PostgresTarget;
  redisUrl: string;
  /** Redis Cluster seed nodes; the prefix must then carry a hash tag such as `{bull}`. */
  clusterNodes?: readonly string[];
  prefix: string;
  /** --own-prefix: dead-letter markers live under it. */
  ownPrefix: string;
  log: Logger;
  concurrency?: number;
  rateLimit?: RateLimit;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** How often the dead-letter sweep runs after start-up (default 5 min). */
  sweepIntervalMs?: number;
}

/** An error that tells the backoff strategy how long the peer asked us to wait (HTTP Retry-After). */
export class RetryLaterError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'RetryLaterError';
  }
}

const MAX_RETRY_AFTER_MS = 3_600_000;
/** Failed jobs the periodic sweep looks at; the start-up sweep looks further back. */
const SWEEP_NEWEST = 500;

/**
 * BullMQ calls this for every backoff type it does not know (the webhook queue's `retry-after`): the peer's
 * Retry-After when it sent one, exponential with jitter otherwise.
 */
export function backoffDelay(attemptsMade: number, baseMs: number, err?: Error): number {
  if (err instanceof RetryLaterError && err.retryAfterMs !== undefined) return Math.min(Math.max(err.retryAfterMs, 0), MAX_RETRY_AFTER_MS);
  const max = 2 ** Math.max(attemptsMade - 1, 0) * baseMs;
  // Jitter keeps a burst of failures from retrying in lockstep against a recovering peer.
  return Math.round(max * (0.8 + Math.random() * 0.2));
}

export class ManagedWorker<Q extends QueueName = QueueName> {
  readonly worker: Worker;
  readonly deadLetters: DeadLetterQueue;
  private readonly store: WorkerStore;
  private readonly pending = new Set<Promise<unknown>>();
  /** Each job's last failed attempt, whose context the dead-letter copy after a final failure joins. */
  private readonly attempts = new WeakMap<Job, ConsumerSpan>();
  private readonly tracing = tracingEnabled();
  private closing?: Promise<void>;
  private sweepTimer?: NodeJS.Timeout;

  constructor(private readonly opts: CreateWorkerOptions<Q>) {
    this.store = opts.postgres
      ? new PostgresWorkerStore(opts.postgres)
      : new RedisWorkerStore({
          redisUrl: opts.redisUrl,
          clusterNodes: opts.clusterNodes,
          prefix: opts.prefix,
          ownPrefix: opts.ownPrefix,
          name: `queuelens:${opts.queue}`,
          log: opts.log,
        });
    this.deadLetters = this.store.deadLetters(opts.queue, opts.log);
    this.worker = this.store.worker(opts.queue, (job: Job, _token?: string, signal?: AbortSignal) => this.run(job as Job<JobData<Q>>, signal), {
      name: `${hostname()}-${process.pid}`,
      concurrency: opts.concurrency ?? 1,
      limiter: opts.rateLimit ? { max: opts.rateLimit.max, duration: opts.rateLimit.durationMs } : undefined,
      // BullMQ treats an explicit undefined as a value: pass only what is set.
      ...(opts.lockDurationMs !== undefined ? { lockDuration: opts.lockDurationMs } : {}),
      ...(opts.stalledIntervalMs !== undefined ? { stalledInterval: opts.stalledIntervalMs } : {}),
      // No BullMQ telemetry on the worker: run() opens the consumer span (consumer-span.ts says why).
      autorun: false,
      settings: {
        backoffStrategy: (attemptsMade, _type, err, job) => {
          const backoff = job?.opts.backoff;
          return backoffDelay(attemptsMade, (typeof backoff === 'object' ? backoff.delay : backoff) ?? 1000, err);
        },
      },
    });
    this.worker.on('failed', (job, err) => {
      if (!job) return;
      this.track(this.afterFailure(job, err));
    });
    this.worker.on('error', (err) => opts.log.error({ queue: opts.queue, err }, 'worker error'));
    // A final failure whose answer from Redis was lost with the connection gets no 'failed' event: ioredis resends
    // the move after reconnecting and it then finds no lock. Sweeping as soon as the store answers again copies such
    // a job now rather than at the next periodic sweep.
    this.store.onReconnect(() => {
      if (this.sweepTimer === undefined || this.closing) return;
      this.sweepNewest('dead-letter sweep after reconnecting failed');
    });
  }

  /**
   * Copies dead letters a crashed predecessor left behind, then starts taking jobs. The sweep repeats (on the
   * newest failed jobs) so a crash of one worker in a fleet that never restarts is still repaired.
   */
  async start(): Promise<void> {
    await this.deadLetters.sweep();
    this.sweepTimer = setInterval(() => this.sweepNewest('dead-letter sweep failed'), this.opts.sweepIntervalMs ?? 300_000);
    this.sweepTimer.unref();
    void this.worker.run().catch((err: unknown) => this.opts.log.error({ queue: this.opts.queue, err }, 'worker stopped with an error'));
    await this.worker.waitUntilReady();
  }

  /**
   * What the health port reports: `running` while BullMQ's processing loop runs (false once it stopped, by close()
   * or an error), `redis` while the worker's connection to its store (Redis, or PostgreSQL) is ready.
   */
  health(): { queue: Q; running: boolean; redis: boolean } {
    return { queue: this.opts.queue, running: this.worker.isRunning(), redis: this.store.ready() };
  }

  /** Whether the store answers (Redis: a PING) within `deadlineMs`: a hung store keeps its connection 'ready'. */
  redisAnswers(deadlineMs: number): Promise<boolean> {
    return this.store.answers(deadlineMs);
  }

  private async run(job: Job<JobData<Q>>, signal?: AbortSignal): Promise<unknown> {
    const span = this.tracing ? startConsumerSpan(job, this.opts.queue) : undefined;
    const ctx = new AttemptContext(this.opts.log, { queue: this.opts.queue, jobId: job.id, attempt: job.attemptsMade + 1 }, span, signal);
    try {
      let data: JobData<Q>;
      try {
        data = validateJob(this.opts.queue, job.data);
      } catch (err) {
        // Retrying cannot fix malformed data: straight to the dead-letter queue.
        throw new UnrecoverableError((err as Error).message);
      }
      const work = () => this.opts.process(job, data, ctx);
      const result = await (span ? span.run(work) : work());
      span?.end();
      return result;
    } catch (err) {
      // BullMQ stores the message in Redis and the consumer span records it; recipients and credentials must not go with it.
      if (err instanceof Error) {
        err.message = redactString(err.message);
        if (err.stack) err.stack = redactString(err.stack);
      }
      span?.end(err);
      // Kept only for an attempt that failed: a final failure's dead-letter copy joins its trace.
      if (span) this.attempts.set(job, span);
      throw err;
    }
  }

  private async afterFailure(job: Job, err: Error): Promise<void> {
    try {
      // finishedOn is set only when BullMQ moved the job to `failed` for good (no retry left, or unrecoverable).
      // The key lines on-call searches for carry the reason and, when traced, the failed attempt's trace_id/span_id.
      const span = this.attempts.get(job);
      if (job.finishedOn) await this.deadLetters.copy(job, span?.context, span?.logFields());
      else {
        this.opts.log.info(
          { queue: this.opts.queue, jobId: job.id, attemptsMade: job.attemptsMade, reason: err.message, ...span?.logFields() },
          'attempt failed; will retry',
        );
        await noteFailedAttempt(job);
      }
    } catch (copyErr) {
      // The start-up sweep copies it later; the job is still safe in `failed`.
      this.opts.log.error({ queue: this.opts.queue, jobId: job.id, dlq: dlqName(this.opts.queue), err: copyErr }, 'dead-letter copy failed');
    }
  }

  /** Copies dead letters missing among the newest failed jobs, in the background; close() waits for it. */
  private sweepNewest(failureMessage: string): void {
    this.track(this.deadLetters.sweep(SWEEP_NEWEST).catch((err: unknown) => this.opts.log.warn({ queue: this.opts.queue, err }, failureMessage)));
  }

  private track(p: Promise<unknown>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Stops taking jobs, waits for in-flight jobs and dead-letter copies, closes connections. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.sweepTimer);
      await this.worker.close();
      await Promise.allSettled([...this.pending]);
      await this.deadLetters.close();
      await this.store.close();
    })();
    return this.closing;
  }
}

export function createWorker<Q extends QueueName>(opts: CreateWorkerOptions<Q>): ManagedWorker<Q> {
  return new ManagedWorker(opts);
}
