// The per-queue gauges of BullMQ's PostgreSQL backend, read-only: the same QueueState/CollectionSnapshot the Redis
// collector produces (src/domain/queue-snapshot.ts), with the schema as the `prefix`. See docs/postgres.md §2.2.
//
// One statement per batch of queues, in a READ ONLY transaction under a statement timeout; no FOR UPDATE, so it takes
// only ACCESS SHARE locks and never waits on, nor delays, a worker's row locks. Every number but the finished counts
// comes from a partial index over live jobs (job_ready_idx, job_delayed_idx, job_active_idx,
// job_waiting_children_idx), so its cost does not grow with retained completed/failed jobs.
import pg from 'pg';
import type { SnapshotSource } from '../domain/backend.js';
import { MAX_NAME_BYTES, backlogOf, markDeadLetterQueues, type CollectionSnapshot, type QueueState, type SkipReason } from '../domain/queue-snapshot.js';

/** BullMQ's default schema (`DEFAULT_SCHEMA` in bullmq's postgres/migrator). */
export const DEFAULT_BULLMQ_SCHEMA = 'bullmq';

/** What BullMQ stores for a manual `rateLimit(ms)`: the limiter's points set to MAX_SAFE_INTEGER. */
const MANUAL_RATE_LIMIT = Number.MAX_SAFE_INTEGER;

export interface PostgresSnapshotOptions {
  /** BullMQ's schema; exported as the `prefix` label. */
  schema?: string;
  /** Queues per statement. */
  batchSize?: number;
  /** Per statement, in ms: a statement that waits longer (say, behind an ACCESS EXCLUSIVE lock) fails. */
  statementTimeoutMs?: number;
  /** At most this many queues are collected; the rest are counted in queuesDropped. */
  maxQueues?: number;
}

/** One queue's row of the batch statement; bigint columns arrive as strings from pg. */
interface QueueRow {
  name: string;
  now_ms: string;
  paused: boolean;
  rate_max: string | null;
  waiting: string;
  prioritized: string;
  delayed: string;
  delayed_overdue: string;
  active: string;
  orphaned_active: string;
  oldest_active_ms: string | null;
  waiting_children: string;
  completed: string;
  failed: string;
  head_eligible_ms: string | null;
  rl_points: string | null;
  rl_expire_ms: string | null;
  workers: string;
}

/** The batch statement; `S` is the quoted schema. $1 = queue names. */
function queueStatesSql(s: string): string {
  return `
WITH n AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms),
apps AS MATERIALIZED (
  SELECT application_name AS app FROM pg_stat_activity
   WHERE datname = current_database() AND application_name <> ''
)
SELECT q.name, n.now_ms,
  EXISTS (SELECT 1 FROM ${s}.meta m WHERE m.queue = q.name AND m.field = 'paused' AND m.value = '1') AS paused,
  (SELECT m.value FROM ${s}.meta m WHERE m.queue = q.name AND m.field = 'max') AS rate_max,
  (SELECT count(*) FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'waiting' AND j.priority = 0) AS waiting,
  (SELECT count(*) FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'waiting' AND j.priority > 0) AS prioritized,
  d.delayed, d.delayed_overdue,
  a.active, a.orphaned_active, a.oldest_active_ms,
  (SELECT count(*) FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'waiting-children') AS waiting_children,
  (SELECT count(*) FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'completed') AS completed,
  (SELECT count(*) FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'failed') AS failed,
  (SELECT GREATEST(h.added_at_ms, h.process_at_ms, h.processed_at_ms,
            (SELECT max(c.finished_at_ms) FROM ${s}.job_dependency dep
               JOIN ${s}.job c ON c.queue = dep.child_queue AND c.id = dep.child_id
              WHERE dep.parent_queue = h.queue AND dep.parent_id = h.id))
     FROM ${s}.job h WHERE h.queue = q.name AND h.state = 'waiting'
    ORDER BY h.priority, h.seq LIMIT 1) AS head_eligible_ms,
  r.points AS rl_points, r.expire_at_ms AS rl_expire_ms,
  (SELECT count(*) FROM apps WHERE apps.app = q.name OR left(apps.app, length(q.name) + 3) = q.name || ':w:') AS workers
FROM unnest($1::text[]) AS q(name)
CROSS JOIN n
CROSS JOIN LATERAL (
  SELECT count(*) AS delayed, count(*) FILTER (WHERE j.process_at_ms <= n.now_ms) AS delayed_overdue
    FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'delayed') d
CROSS JOIN LATERAL (
  SELECT count(*) AS active, count(*) FILTER (WHERE j.locked_until_ms < n.now_ms) AS orphaned_active,
         min(j.processed_at_ms) AS oldest_active_ms
    FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'active') a
LEFT JOIN ${s}.rate_limit r ON r.queue = q.name`;
}

/** Distinct queues of the schema: a loose index scan over meta's primary key, one probe per queue. $1 = limit. */
function discoverySql(s: string): string {
  return `
WITH RECURSIVE q AS (
  (SELECT m.queue FROM ${s}.meta m ORDER BY m.queue LIMIT 1)
  UNION ALL
  SELECT (SELECT m.queue FROM ${s}.meta m WHERE m.queue > q.queue ORDER BY m.queue LIMIT 1) FROM q WHERE q.queue IS NOT NULL
)
SELECT queue FROM q WHERE queue IS NOT NULL LIMIT $1`;
}

const num = (v: string | null): number => (v === null ? 0 : Number(v));

/** One row of the batch statement as the QueueState the Redis collector would have produced. */
export function toQueueState(schema: string, row: QueueRow): QueueState {
  const nowMs = num(row.now_ms);
  const jobs = {
    waiting: num(row.waiting),
    prioritized: num(row.prioritized),
    delayed: num(row.delayed),
    active: num(row.active),
    waiting_children: num(row.waiting_children),
    completed: num(row.completed),
    failed: num(row.failed),
  };
  const ageSeconds = (ms: string | null): number => (ms === null ? 0 : Math.max(0, nowMs - Number(ms)) / 1000);
  const state: QueueState = {
    ref: { prefix: schema, name: row.name },
    jobs,
    paused: row.paused,
    oldestWaitingAgeSeconds: ageSeconds(row.head_eligible_ms),
    delayedOverdue: num(row.delayed_overdue),
    oldestActiveAgeSeconds: jobs.active > 0 ? ageSeconds(row.oldest_active_ms) : 0,
    orphanedActive: num(row.orphaned_active),
    workers: num(row.workers),
    rateLimited: false,
  };
  const points = num(row.rl_points);
  if (row.rl_expire_ms !== null && Number(row.rl_expire_ms) > nowMs && points > 0) {
    if (points >= MANUAL_RATE_LIMIT) state.rateLimited = true;
    else if (row.rate_max !== null && Number.isFinite(Number(row.rate_max))) state.rateLimited = points >= Number(row.rate_max);
    // A worker's own limiter.max never reaches the database: an open window with jobs waiting and none running.
    else state.rateLimited = backlogOf(state) > 0 && jobs.active === 0;
  }
  return state;
}

export class PostgresSnapshotCollector implements SnapshotSource {
  private readonly schema: string;
  private readonly quoted: string;
  private readonly batchSize: number;
  private readonly timeoutMs: number;
  private readonly maxQueues: number;
  private seq = 0;
  private lastSuccessAt = 0;

  constructor(
    private readonly pool: pg.Pool,
    opts: PostgresSnapshotOptions = {},
  ) {
    this.schema = opts.schema ?? DEFAULT_BULLMQ_SCHEMA;
    this.quoted = pg.escapeIdentifier(this.schema);
    this.batchSize = Math.max(1, opts.batchSize ?? 100);
    this.timeoutMs = Math.max(1, Math.floor(opts.statementTimeoutMs ?? 2_000));
    this.maxQueues = Math.max(0, opts.maxQueues ?? 10_000);
  }

  /** Names of the queues in the schema, at most `limit`, in byte order. */
  async discover(limit = this.maxQueues + 1): Promise<string[]> {
    const rows = await this.readOnly<{ queue: string }>(discoverySql(this.quoted), [limit]);
    return rows.map((r) => r.queue);
  }

  /** The gauges of the given queues; one statement per batch. */
  async readQueues(names: string[]): Promise<QueueState[]> {
    const out: QueueState[] = [];
    const sql = queueStatesSql(this.quoted);
    for (let i = 0; i < names.length; i += this.batchSize) {
      const rows = await this.readOnly<QueueRow>(sql, [names.slice(i, i + this.batchSize)]);
      for (const row of rows) out.push(toQueueState(this.schema, row));
    }
    return out;
  }

  /** Discovery plus every queue's gauges, as the Redis collector's snapshot. Never throws: failure is ok=false. */
  async collect(): Promise<CollectionSnapshot> {
    const started = performance.now();
    const seq = ++this.seq;
    const finish = (s: Omit<CollectionSnapshot, 'seq' | 'finishedAt' | 'durationSeconds' | 'lastSuccessAt'>): CollectionSnapshot => {
      const finishedAt = Date.now();
      if (s.ok) this.lastSuccessAt = finishedAt;
      return { seq, finishedAt, durationSeconds: (performance.now() - started) / 1000, lastSuccessAt: this.lastSuccessAt, ...s };
    };
    try {
      const found = await this.discover();
      const skipped: Partial<Record<SkipReason, number>> = {};
      const names: string[] = [];
      for (const name of found.slice(0, this.maxQueues)) {
        if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) skipped.name_too_long = (skipped.name_too_long ?? 0) + 1;
        else names.push(name);
      }
      const queues = await this.readQueues(names);
      markDeadLetterQueues(queues);
      return finish({
        ok: true,
        redisUp: true,
        queues,
        queuesByPrefix: { [this.schema]: queues.length },
        queuesDropped: Math.max(0, found.length - this.maxQueues),
        queuesSkipped: skipped,
      });
    } catch (err) {
      const reachable = answered(err);
      return finish({
        ok: false,
        error: describeError(err, this.schema),
        redisUp: reachable,
        queues: [],
        queuesByPrefix: {},
        queuesDropped: 0,
      });
    }
  }

  /** One statement in a READ ONLY transaction with a statement timeout (and no JIT: these plans are tiny). */
  private async readOnly<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<R[]> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query(`BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = ${this.timeoutMs}; SET LOCAL jit = off`);
      const { rows } = await client.query<R>(sql, params);
      await client.query('COMMIT');
      return rows;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => (broken = true));
      throw err;
    } finally {
      client.release(broken);
    }
  }
}

/**
 * Whether the server answered: an error with a SQLSTATE, except the connection classes (08: connection exception;
 * 57P01-57P03: shutting down, crashed, starting up), which mean it is not there to read from.
 */
function answered(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('08') && !/^57P0[1-3]$/.test(code);
}

/** A sentence a user can act on; never the connection string. */
function describeError(err: unknown, schema: string): string {
  const e = err as { code?: string; message?: string };
  if (e.code === '57014')
    return `PostgreSQL collection exceeded its statement timeout (schema ${schema}); a lock held on BullMQ's tables or an overloaded server`;
  if (e.code === '42P01' || e.code === '3F000')
    return `BullMQ's tables are not in schema "${schema}" (is the schema option right, and has BullMQ migrated it?)`;
  if (e.code === '42501') return `permission denied reading schema "${schema}": grant USAGE on the schema and SELECT on its tables (docs/postgres.md §2.5)`;
  return `PostgreSQL collection failed: ${e.code ? `${e.code} ` : ''}${e.message ?? String(err)}`;
}
