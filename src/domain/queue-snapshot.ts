// Plain data produced by one collection: what every queue held at that moment. No prom-client here.
import type { QueueRef } from './queue-ref.js';

export const JOB_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'waiting_children', 'completed', 'failed'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const DLQ_SUFFIX = '-dlq';

export interface QueueState {
  ref: QueueRef;
  /** For a dead-letter queue, the source queue `<q>` (see markDeadLetterQueues: the one definition). */
  dlqOf?: string;
  jobs: Record<JobState, number>;
  paused: boolean;
  /** Seconds the next job to run has been eligible; 0 when nothing waits. */
  oldestWaitingAgeSeconds: number;
  delayedOverdue: number;
  /** Seconds the longest-running active job has been running; 0 when none. */
  oldestActiveAgeSeconds: number;
  orphanedActive: number;
  /** Undefined when CLIENT LIST is not allowed on this Redis. */
  workers?: number;
  rateLimited: boolean;
}

export interface CollectionSnapshot {
  /** Increments with every collection, successful or not (render caches key on it). */
  seq: number;
  ok: boolean;
  /** Why the collection failed, in words a user can act on. */
  error?: string;
  /** Wall-clock ms when the collection finished. */
  finishedAt: number;
  durationSeconds: number;
  /** Wall-clock ms of the last successful collection (0 = never). */
  lastSuccessAt: number;
  redisUp: boolean;
  queues: QueueState[];
  queuesByPrefix: Record<string, number>;
  /** Queues found beyond --max-queues. */
  queuesDropped: number;
  /** Queues not exported for another reason (bullmq_exporter_queues_dropped{reason}). */
  queuesSkipped?: Partial<Record<SkipReason, number>>;
}

/**
 * Why a queue found in Redis is not exported: a name longer than MAX_NAME_BYTES, a name that is not UTF-8 (its
 * keys cannot be spelled as strings), a queue the collection could not read, or no room left in the exposition.
 */
export const SKIP_REASONS = ['name_too_long', 'not_utf8', 'unreadable', 'exposition_size'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/** Longest queue name exported, in UTF-8 bytes: a label value, repeated in every series of the queue. */
export const MAX_NAME_BYTES = 1024;

/**
 * The one definition of a dead-letter queue, used by the metrics (bullmq_dlq_*), the status verdict, /health, the
 * cards and, through bullmq_dlq_jobs, the alert rules: `<q>-dlq` whose source queue `<q>` exists under the same
 * prefix. A queue of the user's that merely ends in `-dlq` is an ordinary queue.
 */
export function markDeadLetterQueues(queues: QueueState[]): void {
  const ids = new Set(queues.map((q) => `${q.ref.prefix}\u0000${q.ref.name}`));
  for (const q of queues) {
    const source = dlqSource(q.ref.name);
    q.dlqOf = source !== undefined && ids.has(`${q.ref.prefix}\u0000${source}`) ? source : undefined;
  }
}

/** `<q>` for a name `<q>-dlq`: a candidate only, markDeadLetterQueues decides. */
export function dlqSource(queueName: string): string | undefined {
  return queueName.endsWith(DLQ_SUFFIX) && queueName.length > DLQ_SUFFIX.length ? queueName.slice(0, -DLQ_SUFFIX.length) : undefined;
}

/** Jobs ready to run and not yet taken: the `wait` list plus `prioritized`. */
export function backlogOf(q: QueueState): number {
  return q.jobs.waiting + q.jobs.prioritized;
}

/** Jobs a dead-letter queue holds that nobody has dealt with: every state but completed. */
export function parkedJobs(q: QueueState): number {
  let n = 0;
  for (const st of JOB_STATES) if (st !== 'completed') n += q.jobs[st];
  return n;
}
