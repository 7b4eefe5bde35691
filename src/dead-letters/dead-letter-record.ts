// Owns what a dead letter is, whatever store BullMQ runs on: the record copied into `<queue>-dlq`, its deterministic
// ids, the secrets held outside it, how a redrive rebuilds the job from it, and listing. The stores (Redis:
// dead-letters.ts, PostgreSQL: postgres-dead-letters.ts) add only how they write it atomically.
import { ROOT_CONTEXT, trace, type Context, type Link } from '@opentelemetry/api';
import type { Job, JobsOptions, Queue } from 'bullmq';
import type { QueueRef } from '../domain/queue-ref.js';
import { dlqName, withJobDefaults } from '../jobs/queue-defaults.js';
import { isQueueName, validateJob } from '../jobs/schemas.js';
import { SECRET_KEYS } from '../log/redact.js';
import { jobContext } from '../tracing/semconv-telemetry.js';

export interface DeadLetterRecord {
  /** `timestamp`: when the source job was created (BullMQ's job.timestamp); absent in records of older versions. */
  source: { prefix: string; queue: string; jobId: string; name: string; timestamp?: number };
  data: unknown;
  /** The options the job was added with (telemetry context kept separately below). */
  opts: JobsOptions;
  failedReason: string;
  stacktrace: string[];
  attemptsMade: number;
  firstFailedAt: number;
  lastFailedAt: number;
  deadLetteredAt: number;
  /** W3C trace context of the producer (`{"traceparent": …}` JSON), so a redrive can link back. */
  traceMetadata?: string;
  /** Secret-named fields of `data` (a webhook's `secret`) kept out of this record; a redrive puts them back. */
  heldSecrets?: string[];
}

/**
 * Whether a job in a `-dlq` queue is a dead letter queuelens wrote. Anyone can add jobs to any queue (another tool,
 * a user's own queue that happens to end in `-dlq`): listing shows them, redrive refuses them, neither fails on them.
 */
export const NOT_A_DEAD_LETTER = 'not a dead letter queuelens wrote (its data has no source job): nothing was added';

export function isDeadLetterRecord(data: unknown): data is DeadLetterRecord {
  const d = data as Partial<DeadLetterRecord> | null;
  return (
    typeof d === 'object' &&
    d !== null &&
    typeof d.source === 'object' &&
    d.source !== null &&
    typeof d.source.queue === 'string' &&
    typeof d.source.jobId === 'string' &&
    typeof d.deadLetteredAt === 'number'
  );
}

export interface Selection {
  ids?: string[];
  /** Epoch ms: only jobs dead-lettered at or after. */
  since?: number;
  limit?: number;
}

export type RedriveOutcome = {
  dlqJobId: string;
  status: 'redriven' | 'would-redrive' | 'not-found' | 'invalid' | 'conflict';
  newJobId?: string;
  reason?: string;
};

/** What `queuelens worker`, `dlq` and the demo do with a dead-letter queue, on either store. */
export interface DeadLetterQueue {
  readonly source: QueueRef;
  readonly dlq: Queue;
  /** Copies a finally-failed job to the DLQ; idempotent. `parent`: the failed attempt's context. */
  copy(job: Job, parent?: Context, logFields?: Record<string, string>): Promise<string>;
  /** Copies failed jobs among the newest `max` that a crash kept from being copied; returns how many. */
  sweep(max?: number): Promise<number>;
  list(sel?: Selection): Promise<Array<Job<DeadLetterRecord>>>;
  count(): Promise<number>;
  redrive(target: Queue, dlqJob: Job<DeadLetterRecord>, dryRun?: boolean): Promise<RedriveOutcome>;
  purge(jobs: Array<Job<DeadLetterRecord>>, dryRun?: boolean): Promise<number>;
  /** A queue handle that reads and never rewrites meta (for dry runs). */
  readOnlyQueue(name: string): Queue;
  /** Epoch ms by the store's clock, which stamps `deadLetteredAt` (and so anchors `--since`). */
  now(): Promise<number>;
  close(): Promise<void>;
}

/** Deterministic: the same failed job always maps to the same DLQ id, so copying twice is a no-op. */
export function dlqJobId(job: Pick<Job, 'id' | 'timestamp'>): string {
  return `${job.id}-${job.timestamp}`;
}

/** The source job's creation time from a dead letter id dlqJobId made (records of older versions do not carry it). */
function sourceTimestampOf(dlqId: string, sourceJobId: string): number | undefined {
  const rest = dlqId.startsWith(`${sourceJobId}-`) ? dlqId.slice(sourceJobId.length + 1) : '';
  return /^\d{1,16}$/.test(rest) ? Number(rest) : undefined;
}

/** The redriven job's id: redriving the same dead letter twice enqueues once. */
export function redriveJobId(dlqId: string): string {
  return `redrive-${dlqId}`;
}

const REDRIVE_KEPT_OPTS = ['attempts', 'backoff', 'removeOnComplete', 'removeOnFail', 'priority', 'lifo'] as const;
/** Jobs read per page when listing and sweeping. */
export const PAGE = 500;

/** The DLQ job's options: never removed by retention, whatever the source queue's defaults. */
export const DLQ_JOB_OPTS = { removeOnComplete: false, removeOnFail: false } as const;

export const FIRST_FAILURE = 'queuelens:first-failure';

/** Records when an attempt first failed (BullMQ keeps only the last), as a job log line. */
export async function noteFailedAttempt(job: Job): Promise<void> {
  if (job.attemptsMade <= 1) await job.log(`${FIRST_FAILURE} ${Date.now()}`);
}

/** When the job's first attempt failed, from the log line noteFailedAttempt wrote (else `fallback`). */
export async function firstFailure(source: Queue, job: Job, fallback: number): Promise<number> {
  const { logs } = await source.getJobLogs(String(job.id), 0, 19, true);
  for (const line of logs) if (line.startsWith(FIRST_FAILURE)) return Number(line.slice(FIRST_FAILURE.length + 1)) || fallback;
  return fallback;
}

/** The record of a finally-failed job, with its secret-named fields split off (`held`) to be stored apart. */
export function buildRecord(
  job: Job,
  source: QueueRef,
  times: { firstFailedAt: number; lastFailedAt: number; deadLetteredAt: number },
): { record: DeadLetterRecord; held?: Record<string, unknown> } {
  const { telemetry, jobId: _jobId, ...opts } = job.opts as JobsOptions & { telemetry?: { metadata?: string } };
  const { data, held } = holdSecrets(job.data);
  const record: DeadLetterRecord = {
    source: { prefix: source.prefix, queue: source.name, jobId: String(job.id), name: job.name, timestamp: job.timestamp },
    data,
    opts,
    failedReason: job.failedReason ?? '',
    stacktrace: job.stacktrace ?? [],
    attemptsMade: job.attemptsMade,
    ...times,
    traceMetadata: telemetry?.metadata,
    ...(held ? { heldSecrets: Object.keys(held) } : {}),
  };
  return { record, held };
}

/** Splits secret-named top-level fields (SECRET_KEYS, as the log redaction uses) off the job data. */
function holdSecrets(data: unknown): { data: unknown; held?: Record<string, unknown> } {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return { data };
  const kept: Record<string, unknown> = {};
  const held: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) (SECRET_KEYS.test(k) && v !== undefined ? held : kept)[k] = v;
  return Object.keys(held).length > 0 ? { data: kept, held } : { data };
}

/** The job a redrive adds: the record's data with its held secrets back and a `redrivenFrom`, or why it cannot be. */
export type RedrivePlan = { invalid: string } | { name: string; data: Record<string, unknown>; opts: JobsOptions; newJobId: string; link?: Link };

export function redrivePlan(dlqJob: Job<DeadLetterRecord>, held: Record<string, unknown>): RedrivePlan {
  const rec = dlqJob.data;
  const dlqId = String(dlqJob.id);
  if (!isDeadLetterRecord(rec)) return { invalid: NOT_A_DEAD_LETTER };
  // A dead letter of a redriven job still names the job first enqueued, with when it was created: webhook delivery
  // ids derive from both (the id alone repeats once a queue's ids start over).
  const earlier = (rec.data as { redrivenFrom?: { originalJobId?: unknown; originalTimestamp?: unknown } } | null)?.redrivenFrom;
  const { originalJobId, originalTimestamp } =
    typeof earlier?.originalJobId === 'string'
      ? { originalJobId: earlier.originalJobId, originalTimestamp: typeof earlier.originalTimestamp === 'number' ? earlier.originalTimestamp : undefined }
      : { originalJobId: rec.source.jobId, originalTimestamp: rec.source.timestamp ?? sourceTimestampOf(dlqId, rec.source.jobId) };
  const redrivenFrom = { queue: dlqName(rec.source.queue), dlqJobId: dlqId, originalJobId, originalTimestamp, traceMetadata: rec.traceMetadata };
  const data = { ...(rec.data as Record<string, unknown>), ...held, redrivenFrom };
  if (isQueueName(rec.source.queue)) {
    try {
      validateJob(rec.source.queue, data);
    } catch (err) {
      return { invalid: (err as Error).message };
    }
  }
  const own: JobsOptions = {};
  for (const k of REDRIVE_KEPT_OPTS) (own as Record<string, unknown>)[k] = rec.opts[k];
  const kept = isQueueName(rec.source.queue) ? withJobDefaults(rec.source.queue, own) : own;
  const newJobId = redriveJobId(dlqId);
  return { name: dlqJob.name, data, opts: { ...kept, jobId: newJobId }, newJobId, link: linkTo(rec.traceMetadata) };
}

function linkTo(metadata: string | undefined): Link | undefined {
  if (!metadata) return undefined;
  // On ROOT_CONTEXT: unreadable metadata then yields no span context at all, not the redrive's own.
  const sc = trace.getSpanContext(jobContext(ROOT_CONTEXT, metadata));
  return sc && trace.isSpanContextValid(sc) ? { context: sc, attributes: { 'queuelens.link': 'dead-lettered-original' } } : undefined;
}

/**
 * Dead-lettered jobs, newest first. `ids` may name a dead letter (`<job id>-<timestamp>`) or the source job
 * (`<job id>`): people copy the id from the failed job as often as from `dlq list`.
 */
export async function listDeadLetters(dlq: Queue, sel: Selection = {}): Promise<Array<Job<DeadLetterRecord>>> {
  if (sel.ids) {
    const direct = await Promise.all(sel.ids.map((id) => dlq.getJob(id)));
    const missing = sel.ids.filter((_id, i) => direct[i] === undefined);
    let bySource: string[] = [];
    if (missing.length > 0) {
      const waiting = await dlq.getRanges(['wait'], 0, -1);
      bySource = waiting.filter((dlqId) => missing.some((id) => dlqId.startsWith(`${id}-`) && /^\d+$/.test(dlqId.slice(id.length + 1))));
    }
    const jobs = [...direct, ...(await Promise.all(bySource.map((id) => dlq.getJob(id))))];
    const seen = new Set<string>();
    return jobs.filter((j): j is Job<DeadLetterRecord> => {
      if (j === undefined || seen.has(String(j.id))) return false;
      seen.add(String(j.id));
      return sel.since === undefined || j.data.deadLetteredAt >= sel.since;
    });
  }
  const out: Array<Job<DeadLetterRecord>> = [];
  const limit = sel.limit ?? Number.POSITIVE_INFINITY;
  for (let start = 0; out.length < limit; start += PAGE) {
    const jobs = (await dlq.getJobs(['wait'], start, start + PAGE - 1)) as Array<Job<DeadLetterRecord>>;
    for (const j of jobs) {
      if (!j) continue;
      if (sel.since !== undefined && j.data.deadLetteredAt < sel.since) return out;
      out.push(j);
      if (out.length >= limit) break;
    }
    if (jobs.length < PAGE) break;
  }
  return out;
}
