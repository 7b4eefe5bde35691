// Owns dead-letter queues on BullMQ's PostgreSQL backend, with the semantics of dead-letters.ts on Redis: a final
// failure is copied once into `<queue>-dlq` (its secrets held apart), a sweep copies what a crash kept from being
// copied, a redrive moves a dead letter back exactly once, a purge stays purged.
//
// Each write is one transaction of queuelens's own pool: BullMQ's own functions (add_job, remove, through a BullMQ
// backend bound to the transaction) commit together with queuelens's rows in its own schema, or not at all. So a
// redrive needs no claim and no "redriven" mark as on Redis: removing the dead letter is the claim (a concurrent
// redrive's remove waits on the row and then finds nothing), and a redrive that dies mid-way leaves nothing behind.
// queuelens writes BullMQ's tables only through those functions; its own reads of them are plain SELECTs.
import { context, SpanKind, type Context } from '@opentelemetry/api';
import type { Job, Queue } from 'bullmq';
import type pg from 'pg';
import type { QueueRef } from '../domain/queue-ref.js';
import {
  createPgPool,
  databaseNow,
  inTransaction,
  postgresQueue,
  quoteIdent,
  Rollback,
  transactionQueue,
  type PostgresTarget,
} from '../jobs/postgres-store.js';
import { dlqName } from '../jobs/queue-defaults.js';
import { createOwnSchema } from '../jobs/postgres-store.js';
import type { Logger } from '../log/logger.js';
import { redactString } from '../log/redact.js';
import { withSpan } from '../tracing/spans.js';
import { activeTelemetry } from '../tracing/state.js';
import {
  buildRecord,
  DLQ_JOB_OPTS,
  dlqJobId,
  firstFailure,
  isDeadLetterRecord,
  listDeadLetters,
  PAGE,
  redrivePlan,
  type DeadLetterQueue,
  type DeadLetterRecord,
  type RedriveOutcome,
  type Selection,
} from './dead-letter-record.js';

export interface PostgresDeadLetterOptions {
  target: PostgresTarget;
  queue: string;
  log?: Logger;
  /** For readers: never rewrite the DLQ's meta. */
  skipMetasUpdate?: boolean;
}

/** queuelens's tables in its own schema (`--pg-own-schema`), created on first write. */
function ownTables(own: string): string[] {
  const s = quoteIdent(own);
  return [
    // One row per failed job that has been dead-lettered, so a sweep never copies it twice (nor after a purge).
    `CREATE TABLE IF NOT EXISTS ${s}.dead_letter_marker (
       bull_schema text NOT NULL, queue text NOT NULL, dlq_job_id text NOT NULL, job_id text NOT NULL, failed_at_ms bigint NOT NULL,
       PRIMARY KEY (bull_schema, queue, dlq_job_id))`,
    // Secret-named fields of a dead letter's data, kept out of the DLQ job; a redrive puts them back.
    `CREATE TABLE IF NOT EXISTS ${s}.dead_letter_secret (
       bull_schema text NOT NULL, queue text NOT NULL, dlq_job_id text NOT NULL, secrets jsonb NOT NULL,
       PRIMARY KEY (bull_schema, queue, dlq_job_id))`,
  ];
}

export class PostgresDeadLetters implements DeadLetterQueue {
  readonly source: QueueRef;
  readonly dlq: Queue;
  private readonly pool: pg.Pool;
  private readonly own: string;
  private sourceQueue?: Queue;
  private readonly extraQueues: Queue[] = [];
  private tables?: Promise<void>;

  constructor(private readonly opts: PostgresDeadLetterOptions) {
    const t = opts.target;
    this.source = { prefix: t.schema, name: opts.queue };
    this.own = quoteIdent(t.ownSchema);
    this.pool = createPgPool(t, 'queuelens dead-letters');
    this.dlq = postgresQueue(t, dlqName(opts.queue), { telemetry: activeTelemetry(), skipMetasUpdate: opts.skipMetasUpdate });
  }

  /** Whether `<queue>-dlq` exists in BullMQ's schema: its meta (written by every Queue that may write) or any job. */
  static async exists(target: PostgresTarget, queue: string): Promise<boolean> {
    const pool = createPgPool(target, 'queuelens dlq', 1);
    try {
      const { rows } = await pool.query<{ found: boolean }>(
        'SELECT EXISTS (SELECT 1 FROM meta WHERE queue = $1) OR EXISTS (SELECT 1 FROM job WHERE queue = $1) AS found',
        [dlqName(queue)],
      );
      return rows[0]!.found;
    } finally {
      await pool.end();
    }
  }

  /** Creates queuelens's tables once per process, serialised with other workers creating them. */
  private ensureTables(): Promise<void> {
    this.tables ??= (async () => {
      if (await this.tablesExist()) return;
      await inTransaction(this.pool, async (c) => {
        // The schema under the lock every creator of it takes (the sidecar's event follower creates it too).
        await createOwnSchema(c, this.opts.target.ownSchema);
        await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', ['queuelens:dead-letter-tables']);
        for (const ddl of ownTables(this.opts.target.ownSchema)) await c.query(ddl);
      });
    })().catch((err: Error) => {
      this.tables = undefined;
      throw new Error(
        `cannot create queuelens's dead-letter tables in schema ${this.own} (${redactString(err.message)}): grant the role CREATE on the database, or create the schema for it (docs/postgres.md, Grants)`,
      );
    });
    return this.tables;
  }

  private async tablesExist(): Promise<boolean> {
    const { rows } = await this.pool.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AS ok', [
      `${this.own}.dead_letter_marker`,
      `${this.own}.dead_letter_secret`,
    ]);
    return rows[0]!.ok;
  }

  /**
   * Copies a finally-failed job to the DLQ: the marker, the held secrets and BullMQ's add in one transaction. Safe to
   * repeat (the id is deterministic, BullMQ's add of an existing id does nothing); two copies of one job at once are
   * serialised on the marker row. `onlyOnce` (the sweep): nothing at all when the job was dead-lettered before.
   */
  async copy(job: Job, parent: Context = context.active(), logFields: Record<string, string> = {}): Promise<string> {
    await this.copyJob(job, parent, logFields, false);
    return dlqJobId(job);
  }

  /** Whether this call copied the job (false: `onlyOnce` and it had been dead-lettered before). */
  private async copyJob(job: Job, parent: Context, logFields: Record<string, string>, onlyOnce: boolean): Promise<boolean> {
    await this.ensureTables();
    const id = dlqJobId(job);
    const lastFailedAt = job.finishedOn ?? Date.now();
    const firstFailedAt = await firstFailure(this.queueOfSource(), job, lastFailedAt);
    const t = this.opts.target;
    const record = await inTransaction(this.pool, async (c) => {
      const marked = await c.query(
        `INSERT INTO ${this.own}.dead_letter_marker (bull_schema, queue, dlq_job_id, job_id, failed_at_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (bull_schema, queue, dlq_job_id) DO ${onlyOnce ? 'NOTHING' : 'UPDATE SET failed_at_ms = EXCLUDED.failed_at_ms'}`,
        [t.schema, this.opts.queue, id, String(job.id), lastFailedAt],
      );
      if (marked.rowCount === 0) return new Rollback(undefined);
      // The database's clock, not this worker's: `--since` compares dead letters from every worker against one clock.
      const { record, held } = buildRecord(job, this.source, { firstFailedAt, lastFailedAt, deadLetteredAt: await databaseNow(c) });
      if (held)
        await c.query(
          `INSERT INTO ${this.own}.dead_letter_secret (bull_schema, queue, dlq_job_id, secrets) VALUES ($1, $2, $3, $4)
           ON CONFLICT (bull_schema, queue, dlq_job_id) DO UPDATE SET secrets = EXCLUDED.secrets`,
          [t.schema, this.opts.queue, id, JSON.stringify(held)],
        );
      const dlq = transactionQueue(c, t.schema, this.dlq.name, { telemetry: activeTelemetry() });
      await context.with(parent, () => dlq.add(job.name, record, { jobId: id, ...DLQ_JOB_OPTS }));
      return record;
    });
    if (!record) return false;
    this.opts.log?.warn(
      { queue: this.opts.queue, jobId: job.id, dlqJobId: id, attemptsMade: job.attemptsMade, reason: redactString(record.failedReason), ...logFields },
      'job dead-lettered',
    );
    return true;
  }

  /** Copies failed jobs among the newest `max` that have no marker (a worker died between failing and copying). */
  async sweep(max = 5_000): Promise<number> {
    await this.ensureTables();
    const source = this.queueOfSource();
    let copied = 0;
    for (let start = 0; start < max; start += PAGE) {
      const jobs = (await source.getFailed(start, start + PAGE - 1)) as Job[];
      if (jobs.length === 0) break;
      const { rows } = await this.pool.query<{ id: string }>(
        `SELECT dlq_job_id AS id FROM ${this.own}.dead_letter_marker WHERE bull_schema = $1 AND queue = $2 AND dlq_job_id = ANY($3)`,
        [this.opts.target.schema, this.opts.queue, jobs.map(dlqJobId)],
      );
      const seen = new Set(rows.map((r) => r.id));
      for (const job of jobs) {
        if (seen.has(dlqJobId(job)) || !job.finishedOn) continue;
        if (await this.copyJob(job, context.active(), {}, true)) copied += 1;
      }
      if (jobs.length < PAGE) break;
    }
    await this.pruneMarkers();
    if (copied > 0)
      this.opts.log?.warn(
        { queue: this.opts.queue, copied },
        'dead-letter sweep copied failed jobs that had no dead-letter copy (a worker crashed, or lost PostgreSQL, before copying them)',
      );
    return copied;
  }

  /** A marker goes once its failed job has left the failed state (retention removed it); bounded per sweep. */
  private async pruneMarkers(): Promise<void> {
    await this.pool.query(
      `DELETE FROM ${this.own}.dead_letter_marker m
        WHERE (m.bull_schema, m.queue, m.dlq_job_id) IN (
          SELECT o.bull_schema, o.queue, o.dlq_job_id FROM ${this.own}.dead_letter_marker o
           WHERE o.bull_schema = $1 AND o.queue = $2
             AND NOT EXISTS (SELECT 1 FROM job j WHERE j.queue = o.queue AND j.id = o.job_id AND j.state = 'failed'
                              AND j.id || '-' || j.added_at_ms = o.dlq_job_id)
           ORDER BY o.failed_at_ms LIMIT ${PAGE})`,
      [this.opts.target.schema, this.opts.queue],
    );
  }

  private queueOfSource(): Queue {
    this.sourceQueue ??= postgresQueue(this.opts.target, this.opts.queue, { skipMetasUpdate: true });
    return this.sourceQueue;
  }

  readOnlyQueue(name: string): Queue {
    const q = postgresQueue(this.opts.target, name, { skipMetasUpdate: true });
    this.extraQueues.push(q);
    return q;
  }

  list(sel: Selection = {}): Promise<Array<Job<DeadLetterRecord>>> {
    return listDeadLetters(this.dlq, sel);
  }

  count(): Promise<number> {
    return this.dlq.getWaitingCount();
  }

  now(): Promise<number> {
    return databaseNow(this.pool);
  }

  /**
   * Re-enqueues a dead letter to its original queue with fresh attempts and a link to the original, in one
   * transaction that removes the dead letter (BullMQ's remove: 0 when another redrive removed it first, which then
   * waited for that one to commit), takes its held secrets and adds the job (BullMQ's add, id `redrive-<dlq id>`).
   * Two redrives of one dead letter: one redrives, the other gets `not-found`. A redrive that dies rolls back.
   */
  async redrive(target: Queue, dlqJob: Job<DeadLetterRecord>, dryRun = false): Promise<RedriveOutcome> {
    const dlqId = String(dlqJob.id);
    if (dryRun) {
      const held = await this.readSecrets(dlqId);
      const missing = this.missingSecrets(dlqJob, held);
      if (missing) return { dlqJobId: dlqId, status: 'invalid', reason: missing };
      const plan = redrivePlan(dlqJob, held ?? {});
      return 'invalid' in plan
        ? { dlqJobId: dlqId, status: 'invalid', reason: plan.invalid }
        : { dlqJobId: dlqId, status: 'would-redrive', newJobId: plan.newJobId };
    }
    await this.ensureTables();
    const t = this.opts.target;
    const queueName = isDeadLetterRecord(dlqJob.data) ? dlqJob.data.source.queue : target.name;
    const outcome = await withSpan(
      context.active(),
      `redrive ${queueName}`,
      SpanKind.PRODUCER,
      { 'messaging.system': 'bullmq', 'messaging.destination.name': queueName },
      (span, ctx) =>
        inTransaction<RedriveOutcome>(this.pool, async (c) => {
          const dlq = transactionQueue(c, t.schema, this.dlq.name);
          const current = (await dlq.getJob(dlqId)) as Job<DeadLetterRecord> | undefined;
          if (!current || (await dlq.remove(dlqId, { removeChildren: false })) === 0) return new Rollback({ dlqJobId: dlqId, status: 'not-found' });
          const { rows } = await c.query<{ secrets: Record<string, unknown> }>(
            `DELETE FROM ${this.own}.dead_letter_secret WHERE bull_schema = $1 AND queue = $2 AND dlq_job_id = $3 RETURNING secrets`,
            [t.schema, this.opts.queue, dlqId],
          );
          const held = rows[0]?.secrets;
          const missing = this.missingSecrets(current, held);
          if (missing) return new Rollback({ dlqJobId: dlqId, status: 'invalid', reason: missing });
          const plan = redrivePlan(current, held ?? {});
          if ('invalid' in plan) return new Rollback({ dlqJobId: dlqId, status: 'invalid', reason: plan.invalid });
          if (plan.link) span.addLink(plan.link);
          const into = transactionQueue(c, t.schema, target.name, { telemetry: target.opts.telemetry });
          await context.with(ctx, () => into.add(plan.name, plan.data, plan.opts));
          return { dlqJobId: dlqId, status: 'redriven', newJobId: plan.newJobId };
        }),
    );
    if (outcome.status === 'redriven') this.opts.log?.info({ queue: this.source.name, dlqJobId: dlqId, newJobId: outcome.newJobId }, 'dead letter redriven');
    return outcome;
  }

  /** Why a dead letter cannot be redriven for want of its held secrets (signing with another key is worse than not sending). */
  private missingSecrets(dlqJob: Job<DeadLetterRecord>, held: Record<string, unknown> | undefined): string | undefined {
    const rec = dlqJob.data;
    if (!isDeadLetterRecord(rec) || !rec.heldSecrets?.length || held) return undefined;
    return `its ${rec.heldSecrets.join(', ')} is missing from ${this.own}.dead_letter_secret`;
  }

  private async readSecrets(dlqId: string): Promise<Record<string, unknown> | undefined> {
    if (!(await this.tablesExist())) return undefined;
    const { rows } = await this.pool.query<{ secrets: Record<string, unknown> }>(
      `SELECT secrets FROM ${this.own}.dead_letter_secret WHERE bull_schema = $1 AND queue = $2 AND dlq_job_id = $3`,
      [this.opts.target.schema, this.opts.queue, dlqId],
    );
    return rows[0]?.secrets;
  }

  /** Deletes dead letters for good (each with its held secrets, in one transaction); returns how many were asked. */
  async purge(jobs: Array<Job<DeadLetterRecord>>, dryRun = false): Promise<number> {
    if (dryRun) return jobs.length;
    await this.ensureTables();
    const t = this.opts.target;
    for (const j of jobs) {
      await inTransaction(this.pool, async (c) => {
        await transactionQueue(c, t.schema, this.dlq.name).remove(String(j.id), { removeChildren: false });
        await c.query(`DELETE FROM ${this.own}.dead_letter_secret WHERE bull_schema = $1 AND queue = $2 AND dlq_job_id = $3`, [
          t.schema,
          this.opts.queue,
          String(j.id),
        ]);
      });
    }
    return jobs.length;
  }

  async close(): Promise<void> {
    await Promise.all([this.dlq.close(), this.sourceQueue?.close(), ...this.extraQueues.map((q) => q.close())]);
    await this.pool.end().catch(() => undefined);
  }
}
