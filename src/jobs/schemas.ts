// Owns the shape of every job's data: one zod schema per queue, checked by the producer before a job is
// stored and again by the worker before it is processed (Redis may hold data written by older or foreign code).
import { z } from 'zod';

export const QUEUE_NAMES = ['email', 'webhook', 'export'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

/** The shortest webhook signing secret accepted: a job's own `secret`, and a receiver's (verifyWebhook). */
export const MIN_SECRET_LENGTH = 8;

export const EMAIL_TEMPLATES = ['welcome', 'password-reset', 'export-ready'] as const;

/** Set by `dlq redrive`: where the job was dead-lettered, so the new run can be tied to the old one. */
const redrivenFrom = z
  .object({
    queue: z.string(),
    dlqJobId: z.string(),
    /** The job first enqueued, however many redrives ago. */
    originalJobId: z.string(),
    /** When it was created (ms; BullMQ's job.timestamp): with the prefix and id it names the event for good. */
    originalTimestamp: z.number().int().min(0).optional(),
    traceMetadata: z.string().optional(),
  })
  .optional();

export const emailJobSchema = z.object({
  template: z.enum(EMAIL_TEMPLATES),
  to: z.email(),
  /** Template variables; values are rendered as text, never as HTML. */
  vars: z.record(z.string(), z.union([z.string(), z.number()])).default({}),
  redrivenFrom,
});

export const webhookJobSchema = z.object({
  url: z.url({ protocol: /^https?$/ }),
  event: z.string().min(1).max(200),
  payload: z.unknown(),
  /** Per-job signing key; falls back to WEBHOOK_SECRET. */
  secret: z.string().min(MIN_SECRET_LENGTH).optional(),
  redrivenFrom,
});

export const exportJobSchema = z.object({
  format: z.enum(['csv', 'ndjson']),
  /** Source of rows; `synthetic` is built in, others are registered with the export processor. */
  source: z.string().min(1).default('synthetic'),
  rows: z.number().int().min(0).max(1_000_000_000),
  /** File name under EXPORT_DIR; letters, digits, dot, dash and underscore only so it cannot escape the directory. */
  fileName: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,128}$/)
    .refine((n) => !n.startsWith('.'), 'may not start with a dot')
    .optional(),
  /** Who gets the export-ready email. */
  notify: z.email().optional(),
  redrivenFrom,
});

export const jobSchemas = { email: emailJobSchema, webhook: webhookJobSchema, export: exportJobSchema } as const;
export type JobInput<Q extends QueueName> = z.input<(typeof jobSchemas)[Q]>;
export type JobData<Q extends QueueName> = z.output<(typeof jobSchemas)[Q]>;
export type EmailJob = JobData<'email'>;
export type WebhookJob = JobData<'webhook'>;
export type ExportJob = JobData<'export'>;

export class JobValidationError extends Error {
  readonly code = 'E_JOB_INVALID';
  constructor(
    readonly queue: string,
    readonly field: string,
    detail: string,
  ) {
    super(`invalid ${queue} job: ${field}: ${detail}`);
    this.name = 'JobValidationError';
  }
}

export function isQueueName(name: string): name is QueueName {
  return (QUEUE_NAMES as readonly string[]).includes(name);
}

/** Returns the parsed data (defaults filled in) or throws a JobValidationError naming the first bad field. */
export function validateJob<Q extends QueueName>(queue: Q, data: unknown): JobData<Q> {
  const result = jobSchemas[queue].safeParse(data);
  if (result.success) return result.data as JobData<Q>;
  const issue = result.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join('.') : '(data)';
  // zod messages never echo the input value, so an address or secret cannot leak through them.
  throw new JobValidationError(queue, field, issue?.message ?? 'invalid');
}
