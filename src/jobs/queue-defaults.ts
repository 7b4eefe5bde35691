// Owns the per-queue job defaults (retries, backoff, retention) and the queue-level options every producer
// and worker uses, so the events stream keeps enough history for the sidecar's reader.
import type { JobsOptions, QueueOptions } from 'bullmq';
import type { QueueName } from './schemas.js';

/**
 * Events kept in `<queue>:events`. BullMQ's 10,000 is under a second at full speed on a small box
 * (it trims by MAXLEN ~ on every add); 100,000 gives the sidecar several seconds to ride out a GC pause or a restart.
 * Every producer-side Queue constructor writes this into meta, so all of ours must agree.
 */
export const EVENTS_MAX_LEN = 100_000;

const DAY = 86_400;

export const jobDefaults: Record<QueueName, JobsOptions> = {
  // Mail servers recover within minutes; 6 tries over ~1 h of backoff.
  email: {
    attempts: 6,
    backoff: { type: 'exponential', delay: 2_000, jitter: 0.2 },
    removeOnComplete: { age: DAY, count: 10_000 },
    removeOnFail: { age: 7 * DAY, count: 50_000 },
  },
  // Receivers are often down longer; 10 tries spread over hours.
  // `retry-after` (workers/create-worker.ts) is exponential unless the receiver sent Retry-After.
  webhook: {
    attempts: 10,
    backoff: { type: 'retry-after', delay: 5_000 },
    removeOnComplete: { age: DAY, count: 10_000 },
    removeOnFail: { age: 7 * DAY, count: 50_000 },
  },
  // Exports are expensive and rarely transient.
  export: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 30_000, jitter: 0.2 },
    removeOnComplete: { age: 7 * DAY, count: 1_000 },
    removeOnFail: { age: 7 * DAY, count: 1_000 },
  },
};

/**
 * The queue's defaults overlaid with the options a caller set. An option present but `undefined` (an unset CLI
 * flag, `{ attempts: opts.attempts }`) leaves the default alone: spread as is, it would replace `attempts: 6` with
 * nothing, and BullMQ then makes one attempt.
 */
export function withJobDefaults(queue: QueueName, opts: JobsOptions = {}): JobsOptions {
  const out: JobsOptions = { ...jobDefaults[queue] };
  for (const [k, v] of Object.entries(opts)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

export function queueOptions(base: Pick<QueueOptions, 'connection' | 'prefix' | 'telemetry'>): QueueOptions {
  return { ...base, streams: { events: { maxLen: EVENTS_MAX_LEN } } };
}

export function dlqName(queue: string): string {
  return `${queue}-dlq`;
}
