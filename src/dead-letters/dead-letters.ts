// Owns dead-letter queues: copying a job that failed for good to `<queue>-dlq` (idempotently, with
// everything needed to understand and replay it), sweeping for copies a crash prevented, and reading,
// redriving and purging dead-lettered jobs. Nothing here consumes the DLQ: its jobs wait until a human acts.
import { randomUUID } from 'node:crypto';
import { context, SpanKind, type Context } from '@opentelemetry/api';
import { Job, Queue, type JobsOptions } from 'bullmq';
import type { RedisClient } from '../redis/connection.js';
import { leaseRelease } from '../redis/lua-scripts.js';
import { bindScript } from '../redis/scripts.js';
import { dlqName, queueOptions } from '../jobs/queue-defaults.js';
import type { Logger } from '../log/logger.js';
import { redactString } from '../log/redact.js';
import { jobKey, ownKeys, queueKey } from '../redis/keys.js';
import { type QueueRef } from '../domain/queue-ref.js';
import { withSpan } from '../tracing/spans.js';
import { activeTelemetry } from '../tracing/state.js';
import {
  buildRecord,
  DLQ_JOB_OPTS,
  dlqJobId,
  firstFailure,
  isDeadLetterRecord,
  listDeadLetters,
  noteFailedAttempt,
  PAGE,
  redriveJobId,
  redrivePlan,
  type DeadLetterQueue,
  type DeadLetterRecord,
  type RedriveOutcome,
  type Selection,
} from './dead-letter-record.js';

export { dlqJobId, isDeadLetterRecord, NOT_A_DEAD_LETTER, redriveJobId } from './dead-letter-record.js';
export type { DeadLetterQueue, DeadLetterRecord, RedriveOutcome, Selection } from './dead-letter-record.js';

export interface DeadLetterOptions {
  connection: RedisClient;
  prefix: string;
  queue: string;
  log?: Logger;
  /** --own-prefix: where the dead-lettered markers live. */
  ownPrefix: string;
  /** For readers such as the sidecar: never rewrite the DLQ's meta (stream retention). */
  skipMetasUpdate?: boolean;
  /** Longest a redrive may hold its claim on a dead letter (default 10 s). */
  redriveClaimMs?: number;
}

const SWEEP_BATCH = PAGE;
const DLQ_EXISTENCE_KEYS = ['meta', 'id', 'wait', 'paused', 'prioritized', 'delayed', 'active', 'completed', 'failed', 'events'] as const;
/** Longest a redrive may hold its claim if its process dies mid-way. */
const REDRIVE_CLAIM_MS = 10_000;

export class DeadLetters implements DeadLetterQueue {
  readonly source: QueueRef;
  readonly dlq: Queue;
  private readonly doneKey: string;
  private readonly secretsKey: string;
  private readonly ownPrefix: string;
  private sourceQueue?: Queue;
  private readonly extraQueues: Queue[] = [];

  constructor(private readonly opts: DeadLetterOptions) {
    this.source = { prefix: opts.prefix, name: opts.queue };
    this.dlq = new Queue(dlqName(opts.queue), {
      ...queueOptions({ connection: opts.connection, prefix: opts.prefix, telemetry: activeTelemetry() }),
      skipMetasUpdate: opts.skipMetasUpdate,
    });
    this.ownPrefix = opts.ownPrefix;
    this.doneKey = ownKeys.deadLettered(opts.ownPrefix, this.source);
    this.secretsKey = ownKeys.deadLetterSecrets(opts.ownPrefix, this.source);
  }

  /**
   * Copies a finally-failed job to the DLQ. Safe to repeat: the id is deterministic and the add a no-op the second time.
   * `parent`: the failed attempt's context, so the DLQ `add` joins the job's trace (default: the active context).
   */
  async copy(job: Job, parent: Context = context.active(), logFields: Record<string, string> = {}): Promise<string> {
    const id = dlqJobId(job);
    const lastFailedAt = job.finishedOn ?? Date.now();
    const firstFailedAt = await firstFailure(this.queueOfSource(), job, lastFailedAt);
    // Redis's clock, not this worker's: `--since` compares dead letters from every worker against one clock.
    const { record, held } = buildRecord(job, this.source, { firstFailedAt, lastFailedAt, deadLetteredAt: await redisNow(this.opts.connection) });
    // Stored before the copy exists, so no dead letter is ever without the secret its redrive needs.
    if (held) await this.opts.connection.hset(this.secretsKey, id, JSON.stringify(held));
    await context.with(parent, () => this.dlq.add(job.name, record, { jobId: id, ...DLQ_JOB_OPTS }));
    await this.opts.connection.zadd(this.doneKey, lastFailedAt, String(job.id));
    this.opts.log?.warn(
      { queue: this.opts.queue, jobId: job.id, dlqJobId: id, attemptsMade: job.attemptsMade, reason: redactString(record.failedReason), ...logFields },
      'job dead-lettered',
    );
    return id;
  }

  /**
   * Whether `<queue>-dlq` exists under `prefix`: any of the keys BullMQ writes for a queue that ever held a job or
   * was opened for writing. One EXISTS per key, so keys of a queue not hash-tagged into one cluster slot work too.
   */
  static async exists(connection: RedisClient, prefix: string, queue: string): Promise<boolean> {
    const dlq: QueueRef = { prefix, name: dlqName(queue) };
    const found = await Promise.all(DLQ_EXISTENCE_KEYS.map((suffix) => connection.exists(queueKey(dlq, suffix))));
    return found.some((n) => n > 0);
  }

  /** Records when an attempt first failed (BullMQ keeps only the last), as a job log line. */
  static noteFailedAttempt(job: Job): Promise<void> {
    return noteFailedAttempt(job);
  }

  /**
   * Copies failed jobs that never reached the DLQ because a worker died between failing them and copying
   * them. Bounded: looks at the newest `max` failed jobs.
   */
  async sweep(max = 5_000): Promise<number> {
    const source = this.queueOfSource();
    let copied = 0;
    for (let start = 0; start < max; start += SWEEP_BATCH) {
      const jobs = (await source.getFailed(start, start + SWEEP_BATCH - 1)) as Job[];
      if (jobs.length === 0) break;
      const seen = await this.opts.connection.zmscore(this.doneKey, ...jobs.map((j) => String(j.id)));
      for (const [i, job] of jobs.entries()) {
        if (seen[i] !== null || !job.finishedOn) continue;
        await this.copy(job);
        copied += 1;
      }
      if (jobs.length < SWEEP_BATCH) break;
    }
    await this.pruneMarkers();
    if (copied > 0)
      this.opts.log?.warn(
        { queue: this.opts.queue, copied },
        'dead-letter sweep copied failed jobs that had no dead-letter copy (a worker crashed, or lost Redis, before copying them)',
      );
    return copied;
  }

  /**
   * A marker must outlive the failed job it guards, however long the failed-job retention keeps it: a marker dropped
   * by age (it was 30 days) let the sweep copy a still-failed job again, bringing back a dead letter purged long ago.
   * So markers go when their job has left the failed set. Bounded: the oldest SWEEP_BATCH markers per sweep (retention
   * removes the oldest failed jobs first, so those are the ones that can go).
   */
  private async pruneMarkers(): Promise<void> {
    const oldest = await this.opts.connection.zrange(this.doneKey, '0', String(SWEEP_BATCH - 1));
    if (oldest.length === 0) return;
    const failed = await this.opts.connection.zmscore(queueKey(this.source, 'failed'), ...oldest);
    const gone = oldest.filter((_, i) => failed[i] === null);
    if (gone.length > 0) await this.opts.connection.zrem(this.doneKey, ...gone);
  }

  /** Reads the source queue's failed jobs and logs; never rewrites its meta. */
  private queueOfSource(): Queue {
    this.sourceQueue ??= new Queue(this.opts.queue, { connection: this.opts.connection, prefix: this.opts.prefix, skipMetasUpdate: true });
    return this.sourceQueue;
  }

  /** A queue handle that reads and never rewrites meta (for dry runs). */
  readOnlyQueue(name: string): Queue {
    const q = new Queue(name, { connection: this.opts.connection, prefix: this.opts.prefix, skipMetasUpdate: true });
    this.extraQueues.push(q);
    return q;
  }

  /** Dead-lettered jobs, newest first (listDeadLetters). */
  list(sel: Selection = {}): Promise<Array<Job<DeadLetterRecord>>> {
    return listDeadLetters(this.dlq, sel);
  }

  now(): Promise<number> {
    return redisNow(this.opts.connection);
  }

  async count(): Promise<number> {
    return this.dlq.getWaitingCount();
  }

  /**
   * Re-enqueues a dead letter to its original queue with fresh attempts and a link to the original,
   * then removes it from the DLQ. Idempotent: the new job id is derived from the DLQ id. Concurrent
   * redrives of one dead letter (two operators, a retried request) are serialised by a claim in Redis: one
   * redrives, the others get `conflict`, or `not-found` once it is done. The deterministic id alone would not
   * do: once the redriven job is processed and removed, adding it again would run it a second time.
   */
  async redrive(target: Queue, dlqJob: Job<DeadLetterRecord>, dryRun = false): Promise<RedriveOutcome> {
    const dlqId = String(dlqJob.id);
    if (dryRun) return this.redriveClaimed(target, dlqJob);
    const claim = ownKeys.redriveClaim(this.ownPrefix, this.source, dlqId);
    // The claim's value is this redrive's own token: only its holder may commit under it or release it.
    const token = `${process.pid}:${randomUUID()}`;
    const claimMs = this.opts.redriveClaimMs ?? REDRIVE_CLAIM_MS;
    if ((await this.opts.connection.set(claim, token, 'PX', claimMs, 'NX')) !== 'OK') return { dlqJobId: dlqId, status: 'conflict' };
    try {
      // The listing that produced dlqJob may predate another request's finished redrive of it.
      const current = (await this.dlq.getJob(dlqId)) as Job<DeadLetterRecord> | undefined;
      if (!current) return { dlqJobId: dlqId, status: 'not-found' };
      // An earlier redrive committed and stopped before removing the dead letter: finish it, add nothing.
      const committed = await this.opts.connection.get(this.redrivenKey(dlqId));
      if (committed !== null) return await this.finishRedrive(current, committed);
      return await this.redriveClaimed(target, current, { claim, token });
    } finally {
      await bindScript(this.opts.connection, leaseRelease)({ key: claim, token });
    }
  }

  private redrivenKey(dlqId: string): string {
    return ownKeys.redriven(this.ownPrefix, this.source, dlqId);
  }

  /** `fence`: the claim a real redrive holds; without it (a dry run) nothing is written. */
  private async redriveClaimed(target: Queue, dlqJob: Job<DeadLetterRecord>, fence?: { claim: string; token: string }): Promise<RedriveOutcome> {
    const rec = dlqJob.data;
    const dlqId = String(dlqJob.id);
    const newJobId = redriveJobId(dlqId);
    let held: Record<string, unknown> = {};
    if (isDeadLetterRecord(rec) && rec.heldSecrets?.length) {
      const stored = await this.opts.connection.hget(this.secretsKey, dlqId);
      if (stored !== null) held = JSON.parse(stored) as Record<string, unknown>;
      // Gone and never redriven: the job would be signed with the wrong key (or none), so it is not sent at all.
      // Gone because an earlier redrive stopped after its add: the add below is a no-op and the redrive completes.
      else if (!(await target.getJob(newJobId))) {
        return { dlqJobId: dlqId, status: 'invalid', reason: `its ${rec.heldSecrets.join(', ')} is missing from ${this.secretsKey}` };
      }
    }
    const plan = redrivePlan(dlqJob, held);
    if ('invalid' in plan) return { dlqJobId: dlqId, status: 'invalid', reason: plan.invalid };
    if (!fence) return { dlqJobId: dlqId, status: 'would-redrive', newJobId };
    const added = await withSpan(
      context.active(),
      `redrive ${rec.source.queue}`,
      SpanKind.PRODUCER,
      { 'messaging.system': 'bullmq', 'messaging.destination.name': rec.source.queue },
      async (span, ctx) => {
        if (plan.link) span.addLink(plan.link);
        return this.commitRedrive(ctx, target, fence, dlqId, plan.name, plan.data, plan.opts);
      },
    );
    if (!added)
      return { dlqJobId: dlqId, status: 'conflict', reason: 'its claim ran out before the re-add (another redrive may have taken it over); nothing was added' };
    return this.finishRedrive(dlqJob, newJobId);
  }

  /**
   * The re-add, fenced: WATCH the claim and the dead letter, check the claim still holds this redrive's token, then in
   * one MULTI add the job (BullMQ's own add script), drop the held secrets and mark the dead letter redriven. If the
   * claim ran out (Redis ≥ 6.0.9 aborts EXEC on a watched key's expiry), another redrive took it, or the dead letter
   * changed, EXEC does nothing and this returns false. A redrive paused past its claim can therefore never add a job
   * a successor already added, and which may since have been processed and removed (then the idempotent job id alone
   * would not stop it running twice). On a connection of its own: WATCH is per connection.
   */
  private async commitRedrive(
    parent: Context,
    target: Queue,
    fence: { claim: string; token: string },
    dlqId: string,
    name: string,
    data: unknown,
    opts: JobsOptions,
  ): Promise<boolean> {
    const { queue, conn } = await this.fenceQueue(target);
    // The same connection through BullMQ: its transactions know BullMQ's scripts.
    const bull = await bullmqClient(queue);
    const dlqJobKey = jobKey({ prefix: this.opts.prefix, name: this.dlq.name }, dlqId);
    const commit = async (): Promise<boolean> => {
      await conn.watch(fence.claim, dlqJobKey);
      if ((await conn.get(fence.claim)) !== fence.token || (await conn.exists(dlqJobKey)) === 0) {
        await conn.unwatch();
        return false;
      }
      // BullMQ's own producer span and trace context, as Queue.add makes them.
      // Under the worker's job context manager the active context does not survive the awaits above: BullMQ's add span
      // is made a child of the redrive span explicitly.
      return (await context.with(parent, () =>
        queue.trace(SpanKind.PRODUCER, 'add', `${queue.name}.${name}`, async (span, metadata) => {
          const job = new Job(queue, name, data, metadata ? { ...opts, telemetry: { metadata } } : opts, opts.jobId);
          const multi = bull.multi();
          // Queued on the transaction synchronously; the promise only settles with the transaction object itself.
          void job.addJob(multi as never).catch(() => undefined);
          multi.hdel(this.secretsKey, dlqId);
          multi.set(this.redrivenKey(dlqId), String(opts.jobId));
          const results = (await multi.exec()) as Array<[Error | null, unknown]> | null;
          if (results === null) return false;
          const failed = results.find(([err]) => err);
          if (failed) throw failed[0] as Error;
          span?.setAttributes({ 'bullmq.job.name': name, 'bullmq.job.id': String(opts.jobId) });
          return true;
        }),
      )) as boolean;
    };
    // One commit at a time on the fence connection: a second WATCH would join the first one's transaction.
    const run = this.fenceChain.then(commit, commit);
    this.fenceChain = run.catch(() => undefined);
    return run;
  }

  private fence?: Promise<{ queue: Queue; conn: RedisClient }>;
  private fenceChain: Promise<unknown> = Promise.resolve();

  private fenceQueue(target: Queue): Promise<{ queue: Queue; conn: RedisClient }> {
    this.fence ??= (async () => {
      const conn = (this.opts.connection as { duplicate(): RedisClient }).duplicate();
      const queue = new Queue(target.name, { connection: conn, prefix: target.opts.prefix, skipMetasUpdate: true, telemetry: target.opts.telemetry });
      await queue.waitUntilReady();
      return { queue, conn };
    })();
    return this.fence;
  }

  /** The re-add is committed: remove the dead letter, then the mark that said its removal was pending. */
  private async finishRedrive(dlqJob: Job<DeadLetterRecord>, newJobId: string): Promise<RedriveOutcome> {
    const dlqId = String(dlqJob.id);
    await this.opts.connection.hdel(this.secretsKey, dlqId);
    await dlqJob.remove();
    await this.opts.connection.del(this.redrivenKey(dlqId));
    this.opts.log?.info({ queue: this.source.name, dlqJobId: dlqId, newJobId }, 'dead letter redriven');
    return { dlqJobId: dlqId, status: 'redriven', newJobId };
  }

  /** Deletes dead letters for good; returns how many were removed. */
  async purge(jobs: Array<Job<DeadLetterRecord>>, dryRun = false): Promise<number> {
    if (dryRun) return jobs.length;
    let n = 0;
    for (const j of jobs) {
      await j.remove();
      await this.opts.connection.hdel(this.secretsKey, String(j.id));
      await this.opts.connection.del(this.redrivenKey(String(j.id)));
      n += 1;
    }
    return n;
  }

  async close(): Promise<void> {
    const fence = this.fence;
    this.fence = undefined;
    await Promise.all([this.dlq.close(), this.sourceQueue?.close(), ...this.extraQueues.map((q) => q.close()), fence?.then(closeWithConnection)]);
  }
}

/** Closes a queue and the connection it was given (BullMQ leaves a passed-in connection open). */
async function closeWithConnection({ queue, conn }: { queue: Queue; conn: RedisClient }): Promise<void> {
  await queue.close();
  conn.disconnect();
}

/** The queue's Redis client as BullMQ wraps it (6.x: through its backend; 5.x: on the queue). */
function bullmqClient(queue: Queue): Promise<RedisClient> {
  const q = queue as unknown as { getBackend?: () => { client: Promise<RedisClient> }; client: Promise<RedisClient> };
  return q.getBackend ? q.getBackend().client : q.client;
}

/** Epoch ms by the Redis server's clock. */
export async function redisNow(connection: RedisClient): Promise<number> {
  const [sec, usec] = await connection.time();
  return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
}
