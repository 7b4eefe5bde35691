// The per-queue gauges of BullMQ's PostgreSQL backend, read-only: the same QueueState/CollectionSnapshot the Redis
// collector produces (src/domain/queue-snapshot.ts), with the schema as the `prefix`. See docs/postgres.md §2.2.
//
// One statement per batch of queues, all in one REPEATABLE READ, READ ONLY transaction (one snapshot) under a
// statement timeout; no FOR UPDATE, so it takes only ACCESS SHARE locks and never waits on, nor delays, a worker's row
// locks. Every number but the finished counts comes from a partial index over live jobs (job_ready_idx,
// job_delayed_idx, job_active_idx, job_waiting_children_idx), so its cost does not grow with retained jobs.
//
// The completed/failed counts are O(retained) to count (BullMQ keeps no counter), so they are counted only when they
// may have changed: every transaction that changes a queue's finished set through BullMQ also inserts an event row of
// that queue (move_to_completed/failed with their retention deletes, clean, reprocess, dedup removal), except
// job.remove() and Queue.retryJobs(), which the slow full recount (finishedRecountMs) catches. A queue is recounted when
// an event of a kind that can change it committed above a watermark proven like the event reader's (docs/postgres.md
// §2.2): below it every transaction that took an event id has ended, so a late commit cannot hide.
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { ChangePlan } from '../collector/change-plan.js';
import type { CollectOptions, QueueLook, QueueReading, SnapshotSource } from '../domain/backend.js';
import { queueId } from '../domain/queue-ref.js';
import { MAX_NAME_BYTES, backlogOf, markDeadLetterQueues, type CollectionSnapshot, type QueueState, type SkipReason } from '../domain/queue-snapshot.js';
import { inTransaction } from './transaction.js';

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
  /**
   * Every queue's completed/failed counts are recounted at least this often (ms), whatever its events say: the bound on
   * how long job.remove() or Queue.retryJobs() of a finished job (the only BullMQ paths that change the finished set
   * without an event) can go unseen. 0: recount every queue at every collection (exact always, O(retained)).
   */
  finishedRecountMs?: number;
  /**
   * The queues to read (the sidecar's discovery on its own slow timer, postgres/discovery.ts); unset = discover the
   * schema's queues at every collection.
   */
  watched?: () => WatchedQueues;
  /**
   * Change-driven collection (collector/change-plan.ts, the same planner as on Redis): only the queues whose events
   * moved, those not followed and a risk-paced sweep are read; the others keep their last look, aged by the clock.
   * Unset: every queue is read at every collection.
   */
  plan?: ChangePlan;
  /** With a plan, the workers of the queues not read are counted (pg_stat_activity) at most this often (ms). */
  workersEveryMs?: number;
}

/** The queues a collection reads, and what the budget left out. */
export interface WatchedQueues {
  names: readonly string[];
  dropped: number;
  skipped: Partial<Record<SkipReason, number>>;
}

/**
 * Events that never accompany a change to a queue's completed/failed set (read from BullMQ's SQL, docs/postgres.md
 * §2.2); `waiting` too unless it left a finished state (reprocess). Any other event, or an unknown one, recounts.
 */
const HARMLESS_EVENTS = ['added', 'active', 'progress', 'paused', 'resumed', 'drained', 'delayed', 'stalled', 'duplicated', 'deduplicated', 'waiting-children'];

const MAX_CANDIDATES = 64;

/** A queue's finished counts and the watermark above which an event would mean they may have changed. */
interface FinishedCounts {
  completed: number;
  failed: number;
  base: bigint;
  /** How many events that can change them lay above `base` when they were last proven current. */
  seen: number;
  /** Date.now() of the last unconditional recount. */
  countedAt: number;
  /**
   * The transaction that last wrote the queue's meta `version` row (its xmin), null without one. Every `Queue` writes
   * it when constructed, and `obliterate` deletes it with the queue's jobs and events without publishing any event: a
   * different value (or none) means the queue may have been obliterated (and re-created) since the counts were taken.
   */
  gen: string | null;
}

/** The sequence head read at one collection and the xmax of the next collection's snapshot. */
interface Candidate {
  v: bigint;
  bound?: bigint;
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
  /** When the earliest delayed job not yet overdue falls due (null: none). */
  next_due_ms: string | null;
  active: string;
  orphaned_active: string;
  oldest_active_ms: string | null;
  /** The earliest lock of an active job that has not expired yet (null: none). */
  lock_expires_ms: string | null;
  waiting_children: string;
  /** null when the cached counts still hold. */
  completed: string | null;
  failed: string | null;
  /** Events that can change the finished set above this collection's watermark. */
  seen: string;
  /** xmin of meta `version` (see FinishedCounts.gen). */
  gen: string | null;
  head_eligible_ms: string | null;
  rl_points: string | null;
  rl_expire_ms: string | null;
  workers: string;
}

/** The batch statement; `S` is the quoted schema. $1 = queue names, $2 = per queue the watermark of its cached finished counts (null: count them). */
function queueStatesSql(s: string): string {
  return `
WITH n AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms),
apps AS MATERIALIZED (
  SELECT application_name AS app FROM pg_stat_activity
   WHERE datname = current_database() AND application_name <> ''
)
SELECT q.name, n.now_ms,
  COALESCE((SELECT m.value = '1' FROM ${s}.meta m WHERE m.queue = q.name AND m.field = 'paused'), false) AS paused,
  (SELECT m.value FROM ${s}.meta m WHERE m.queue = q.name AND m.field = 'max') AS rate_max,
  (SELECT count(*) FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'waiting' AND j.priority = 0) AS waiting,
  (SELECT count(*) FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'waiting' AND j.priority > 0) AS prioritized,
  d.delayed, d.delayed_overdue, d.next_due_ms,
  a.active, a.orphaned_active, a.oldest_active_ms, a.lock_expires_ms,
  (SELECT count(*) FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'waiting-children') AS waiting_children,
  CASE WHEN f.recount THEN (SELECT count(*) FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'completed') END AS completed,
  CASE WHEN f.recount THEN (SELECT count(*) FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'failed') END AS failed,
  h.above_watermark AS seen, g.gen,
  (SELECT GREATEST(h.added_at_ms, h.process_at_ms, h.processed_at_ms,
            (SELECT max(c.finished_at_ms) FROM ${s}.job_dependency dep
               JOIN ${s}.job c ON c.queue = dep.child_queue AND c.id = dep.child_id
              WHERE dep.parent_queue = h.queue AND dep.parent_id = h.id))
     FROM ${s}.job h WHERE h.queue = q.name AND h.state = 'waiting'
    ORDER BY h.priority, h.seq LIMIT 1) AS head_eligible_ms,
  r.points AS rl_points, r.expire_at_ms AS rl_expire_ms,
  (SELECT count(*) FROM apps WHERE apps.app = q.app OR left(apps.app, length(q.wprefix)) = q.wprefix) AS workers
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $6::text[], $7::text[], $8::text[]) AS q(name, base, seen, app, wprefix, gen)
CROSS JOIN n
CROSS JOIN LATERAL (SELECT (SELECT m.xmin::text FROM ${s}.meta m WHERE m.queue = q.name AND m.field = 'version') AS gen) g
CROSS JOIN LATERAL (
  -- Events that can change the finished set (not in $4, the harmless kinds): how many lie above the cached counts'
  -- base, and above this collection's watermark $5 (kept with the counts for the next check). Event primary key.
  SELECT count(*) FILTER (WHERE e.id > q.base) AS above_base, count(*) FILTER (WHERE e.id > $5) AS above_watermark
    FROM ${s}.event e
   WHERE e.queue = q.name AND e.id > LEAST(COALESCE(q.base, $5), $5)
     AND NOT (e.event = ANY ($4::text[]) OR (e.event = 'waiting' AND COALESCE(e.data->>'prev', '') NOT IN ('completed', 'failed')))) h
CROSS JOIN LATERAL (
  -- Recount unless exactly the events seen when the counts were taken lie above their base (rows are only added
  -- there, except by trimming: publish_event deletes ids <= newest id - maxLenEvents, so a prefix, checked too).
  SELECT q.base IS NULL OR h.above_base <> q.seen OR g.gen IS DISTINCT FROM q.gen
      OR COALESCE((SELECT max(e.id) FROM ${s}.event e WHERE e.queue = q.name) - q.base >= COALESCE(
           (SELECT CASE WHEN m.value ~ '^[0-9]{1,9}$' AND m.value::bigint > 0 THEN m.value::bigint END
              FROM ${s}.meta m WHERE m.queue = q.name AND m.field = 'opts.maxLenEvents'), 10000), false) AS recount) f
CROSS JOIN LATERAL (
  SELECT count(*) AS delayed, count(*) FILTER (WHERE j.process_at_ms <= n.now_ms) AS delayed_overdue,
         min(j.process_at_ms) FILTER (WHERE j.process_at_ms > n.now_ms) AS next_due_ms
    FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'delayed') d
CROSS JOIN LATERAL (
  SELECT count(*) AS active, count(*) FILTER (WHERE j.locked_until_ms < n.now_ms) AS orphaned_active,
         min(j.processed_at_ms) AS oldest_active_ms,
         min(j.locked_until_ms) FILTER (WHERE j.locked_until_ms >= n.now_ms) AS lock_expires_ms
    FROM ${s}.job j WHERE j.queue = q.name AND j.state = 'active') a
LEFT JOIN ${s}.rate_limit r ON r.queue = q.name`;
}

/** Workers of each queue ($1 names, $2 their session names, $3 their worker session prefixes): the batch statement's count. */
const workersSql = `
WITH apps AS MATERIALIZED (
  SELECT application_name AS app FROM pg_stat_activity
   WHERE datname = current_database() AND application_name <> ''
)
SELECT q.name, (SELECT count(*) FROM apps WHERE apps.app = q.app OR left(apps.app, length(q.wprefix)) = q.wprefix) AS workers
  FROM unnest($1::text[], $2::text[], $3::text[]) AS q(name, app, wprefix)`;

/** The transaction's snapshot bounds and the event sequence head, read after the snapshot was taken. */
function snapshotSql(s: string): string {
  return `
SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin, pg_snapshot_xmax(pg_current_snapshot())::text AS xmax,
       (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ${s}.event_seq)::text AS head,
       current_setting('server_version_num')::int AS version`;
}

/** Longest `application_name` PostgreSQL keeps (NAMEDATALEN - 1 bytes); a longer one is cut. */
const MAX_APP_NAME_BYTES = 63;

/**
 * The `application_name` PostgreSQL shows in pg_stat_activity for a session that set `name`: every byte outside
 * printable ASCII replaced (by `?` before PostgreSQL 16, by a `\xNN` escape from 16 on), then cut to 63 bytes. A
 * worker of a queue named `café` or with a name over 63 bytes is registered under that form, not the queue name.
 */
export function sessionNameOf(name: string, serverVersionNum: number): string {
  let out = '';
  for (const b of Buffer.from(name, 'utf8')) {
    if (b >= 32 && b <= 126) out += String.fromCharCode(b);
    else out += serverVersionNum >= 160000 ? `\\x${b.toString(16).padStart(2, '0')}` : '?';
  }
  return out.slice(0, MAX_APP_NAME_BYTES);
}

/**
 * Distinct queues of the schema, in byte order: a loose index scan over the primary keys of meta, job and event (each
 * starts with the queue), one probe of each per queue. A queue exists as soon as any of the three holds a row of it:
 * a producer with skipMetasUpdate (or a FlowProducer alone) writes jobs and events but no meta row, and a Queue's meta
 * write can land after its first job. $1 = limit.
 */
function discoverySql(s: string): string {
  const next = (t: string, after: string) => `(SELECT x.queue FROM ${s}.${t} x ${after} ORDER BY x.queue LIMIT 1)`;
  const least = (after: string) => `LEAST(${['meta', 'job', 'event'].map((t) => next(t, after)).join(', ')})`;
  return `
WITH RECURSIVE q AS (
  SELECT ${least('')} AS queue
  UNION ALL
  SELECT ${least('WHERE x.queue > q.queue')} FROM q WHERE q.queue IS NOT NULL
)
SELECT queue FROM q WHERE queue IS NOT NULL LIMIT $1`;
}

const num = (v: string | null): number => (v === null ? 0 : Number(v));

/** One row of the batch statement as a look (domain/backend.ts), in ms of the database clock (-1: none). */
export function lookOf(schema: string, row: QueueRow): QueueLook {
  const nowMs = num(row.now_ms);
  const ms = (v: string | null): number => (v === null ? -1 : Number(v));
  const expireMs = ms(row.rl_expire_ms);
  const rateMax = row.rate_max === null ? Number.NaN : Number(row.rate_max);
  const active = num(row.active);
  return {
    ref: { prefix: schema, name: row.name },
    nowMs,
    reading: {
      metaExists: 1,
      paused: row.paused ? 1 : 0,
      waiting: num(row.waiting),
      active,
      prioritized: num(row.prioritized),
      delayed: num(row.delayed),
      waitingChildren: num(row.waiting_children),
      completed: num(row.completed),
      failed: num(row.failed),
      delayedOverdue: num(row.delayed_overdue),
      headEligibleMs: ms(row.head_eligible_ms),
      oldestActiveStartMs: ms(row.oldest_active_ms),
      orphanedActive: num(row.orphaned_active),
      activeLocksChecked: active,
      limiterPttl: expireMs > nowMs ? expireMs - nowMs : 0,
      limiterCount: num(row.rl_points),
      // -1: no `max` in meta (a worker's own limiter.max never reaches the database).
      globalRateMax: Number.isFinite(rateMax) ? rateMax : -1,
      lockOwners: 0,
      nextDueMs: ms(row.next_due_ms),
      lockExpiresMs: ms(row.lock_expires_ms),
    },
  };
}

/** A look (read now, or kept and aged by collector/change-plan.ts) as the QueueState the Redis collector would have produced. */
export function stateOf(look: QueueLook, workers: number): QueueState {
  const f = look.reading as QueueReading;
  const ageSeconds = (ms: number): number => (ms < 0 ? 0 : Math.max(0, look.nowMs - ms) / 1000);
  const jobs = {
    waiting: f.waiting,
    prioritized: f.prioritized,
    delayed: f.delayed,
    active: f.active,
    waiting_children: f.waitingChildren,
    completed: f.completed,
    failed: f.failed,
  };
  const state: QueueState = {
    ref: look.ref,
    jobs,
    paused: f.paused === 1,
    oldestWaitingAgeSeconds: ageSeconds(f.headEligibleMs),
    delayedOverdue: f.delayedOverdue,
    oldestActiveAgeSeconds: jobs.active > 0 ? ageSeconds(f.oldestActiveStartMs) : 0,
    orphanedActive: f.orphanedActive,
    workers,
    rateLimited: false,
  };
  const points = f.limiterCount;
  if (f.limiterPttl > 0 && points > 0) {
    if (points >= MANUAL_RATE_LIMIT) state.rateLimited = true;
    else if (f.globalRateMax >= 0) state.rateLimited = points >= f.globalRateMax;
    // A worker's own limiter.max never reaches the database: an open window with jobs waiting and none running.
    else state.rateLimited = backlogOf(state) > 0 && jobs.active === 0;
  }
  return state;
}

/** One row of the batch statement as the QueueState the Redis collector would have produced. */
export function toQueueState(schema: string, row: QueueRow): QueueState {
  return stateOf(lookOf(schema, row), num(row.workers));
}

export class PostgresSnapshotCollector implements SnapshotSource {
  private readonly schema: string;
  private readonly quoted: string;
  private readonly batchSize: number;
  private readonly timeoutMs: number;
  private readonly maxQueues: number;
  private readonly recountMs: number;
  private readonly watched: (() => WatchedQueues) | undefined;
  private seq = 0;
  private lastSuccessAt = 0;
  /** Per queue, its finished counts as of the collection that last proved them current. */
  private readonly finished = new Map<string, FinishedCounts>();
  /** Every event id <= watermark was taken by a transaction that had ended before the last collection's snapshot. */
  private watermark = 0n;
  private candidates: Candidate[] = [];
  private recounted = 0;
  private readonly plan: ChangePlan | undefined;
  private readonly workersEveryMs: number;
  /** With a plan: workers per queue as last counted, for the queues a pass does not read. */
  private workerCounts = new Map<string, number>();
  private workersAt = 0;
  private serverVersion: number | undefined;

  constructor(
    private readonly pool: pg.Pool,
    opts: PostgresSnapshotOptions = {},
  ) {
    this.schema = opts.schema ?? DEFAULT_BULLMQ_SCHEMA;
    this.quoted = pg.escapeIdentifier(this.schema);
    this.batchSize = Math.max(1, opts.batchSize ?? 100);
    this.timeoutMs = Math.max(1, Math.floor(opts.statementTimeoutMs ?? 2_000));
    this.maxQueues = Math.max(0, opts.maxQueues ?? 10_000);
    this.recountMs = Math.max(0, opts.finishedRecountMs ?? 60_000);
    this.watched = opts.watched;
    this.plan = opts.plan;
    this.workersEveryMs = Math.max(0, opts.workersEveryMs ?? 0);
  }

  /** How many queues had their completed/failed counted (O(their retained jobs)) by the last readQueues(). */
  get lastRecounted(): number {
    return this.recounted;
  }

  /** Names of the queues in the schema, at most `limit`, in byte order. */
  async discover(limit = this.maxQueues + 1): Promise<string[]> {
    return this.transaction(async (client) => (await client.query<{ queue: string }>(discoverySql(this.quoted), [limit])).rows.map((r) => r.queue));
  }

  /** The gauges of the given queues: one snapshot, one statement per batch. */
  async readQueues(names: string[]): Promise<QueueState[]> {
    return (await this.readLooks(names)).map(({ look, workers }) => stateOf(look, workers));
  }

  /**
   * The given queues' looks and worker counts: one snapshot, one statement per batch. Those named in `recount` have
   * their finished counts counted whatever their events say (a sweep: job.remove() and Queue.retryJobs() write none).
   */
  private async readLooks(names: string[], recount?: ReadonlySet<string>): Promise<Array<{ look: QueueLook; workers: number }>> {
    // A named statement: planned once per connection (a generic plan: the batch statement takes longer to plan than to
    // run), not at every collection.
    const text = queueStatesSql(this.quoted);
    const name = `queuelens_states_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
    return this.transaction(async (client) => {
      const snap = (await client.query<{ xmin: string; xmax: string; head: string; version: number }>(snapshotSql(this.quoted))).rows[0]!;
      const base = this.advance(BigInt(snap.xmin), BigInt(snap.xmax), BigInt(snap.head));
      this.serverVersion = snap.version;
      const now = Date.now();
      const out: Array<{ look: QueueLook; workers: number }> = [];
      let recounted = 0;
      for (let i = 0; i < names.length; i += this.batchSize) {
        const batch = names.slice(i, i + this.batchSize);
        const cached = batch.map((name) => {
          const f = this.finished.get(name);
          return f === undefined || now - f.countedAt >= this.recountMs || recount?.has(name) ? undefined : f;
        });
        // How the queue's workers show in pg_stat_activity: `<queue>` and `<queue>:w:<worker name>`, as PostgreSQL stores them.
        const apps = batch.map((n) => sessionNameOf(n, snap.version));
        const prefixes = batch.map((n) => sessionNameOf(`${n}:w:`, snap.version));
        const params = [
          batch,
          cached.map((f) => f?.base.toString() ?? null),
          cached.map((f) => f?.seen ?? null),
          HARMLESS_EVENTS,
          base.toString(),
          apps,
          prefixes,
          cached.map((f) => f?.gen ?? null),
        ];
        const { rows } = await client.query<QueueRow>({ name, text, values: params });
        for (const row of rows) {
          let f = this.finished.get(row.name);
          if (row.completed !== null || f === undefined) {
            recounted++;
            f = { completed: num(row.completed), failed: num(row.failed), base, seen: num(row.seen), countedAt: now, gen: row.gen };
            this.finished.set(row.name, f);
          } else {
            f.base = base;
            f.seen = num(row.seen);
          }
          out.push({ look: lookOf(this.schema, { ...row, completed: String(f.completed), failed: String(f.failed) }), workers: num(row.workers) });
        }
      }
      this.recounted = recounted;
      return out;
    });
  }

  /**
   * The event reader's watermark proof (docs/postgres.md §2.3), on the collections' snapshots: a sequence head read at
   * collection k is final once a later snapshot's xmin has passed the xmax of collection k+1's snapshot. Returns the
   * watermark proven for this snapshot.
   */
  private advance(xmin: bigint, xmax: bigint, head: bigint): bigint {
    for (const c of this.candidates) c.bound ??= xmax;
    for (const c of this.candidates) if (c.bound !== undefined && c.bound <= xmin && c.v > this.watermark) this.watermark = c.v;
    this.candidates = this.candidates.filter((c) => c.v > this.watermark);
    if (head > this.watermark) this.candidates.push({ v: head });
    // While a long transaction holds xmin back a candidate is added per collection; dropping the oldest only delays it.
    if (this.candidates.length > MAX_CANDIDATES) this.candidates.splice(0, this.candidates.length - MAX_CANDIDATES);
    return this.watermark;
  }

  /**
   * Change-driven: reads the queues the plan names (the others keep their last look, aged), and counts the workers of
   * the queues not read at most every workersEveryMs (a worker connecting writes no event), even when there are none.
   */
  private async readPlanned(names: readonly string[], plan: ChangePlan): Promise<QueueState[]> {
    const { read, kept, swept } = plan.plan(names.map((name) => ({ prefix: this.schema, name })));
    const recount = new Set(read.filter((r) => swept.has(queueId(r))).map((r) => r.name));
    const fresh =
      read.length > 0
        ? await this.readLooks(
            read.map((r) => r.name),
            recount,
          )
        : [];
    // The local clock when the reply came: a kept look is aged from it.
    const readAt = Date.now();
    for (const { look, workers } of fresh) {
      plan.keep(look, readAt);
      this.workerCounts.set(look.ref.name, workers);
    }
    // Also how a collection that reads no queue learns the server is gone (as CLIENT LIST does on Redis).
    if (Date.now() - this.workersAt >= this.workersEveryMs) {
      const counted = await this.countWorkers(kept.map((k) => k.ref.name));
      for (const [name, n] of counted) this.workerCounts.set(name, n);
      this.workersAt = Date.now();
    }
    const byName = new Map<string, QueueState>();
    for (const { look, workers } of fresh) byName.set(look.ref.name, stateOf(look, workers));
    for (const look of kept) byName.set(look.ref.name, stateOf(look, this.workerCounts.get(look.ref.name) ?? 0));
    const live = new Set(names);
    for (const name of this.workerCounts.keys()) if (!live.has(name)) this.workerCounts.delete(name);
    return names.flatMap((n) => byName.get(n) ?? []);
  }

  /** Workers per queue from pg_stat_activity alone (none of BullMQ's tables), as the batch statement counts them. */
  private async countWorkers(names: readonly string[]): Promise<Map<string, number>> {
    return this.transaction(async (client) => {
      this.serverVersion ??= Number((await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v);
      const version = this.serverVersion;
      const { rows } = await client.query<{ name: string; workers: string }>(workersSql, [
        names,
        names.map((n) => sessionNameOf(n, version)),
        names.map((n) => sessionNameOf(`${n}:w:`, version)),
      ]);
      return new Map(rows.map((r) => [r.name, Number(r.workers)]));
    });
  }

  /** Every queue of the schema, within --max-queues, names over MAX_NAME_BYTES skipped. */
  private async discoverAll(): Promise<WatchedQueues> {
    const found = await this.discover();
    const skipped: Partial<Record<SkipReason, number>> = {};
    const names: string[] = [];
    for (const name of found.slice(0, this.maxQueues)) {
      if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) skipped.name_too_long = (skipped.name_too_long ?? 0) + 1;
      else names.push(name);
    }
    return { names, dropped: Math.max(0, found.length - this.maxQueues), skipped };
  }

  /** Discovery plus every queue's gauges, as the Redis collector's snapshot. Never throws: failure is ok=false. */
  async collect(o: CollectOptions = {}): Promise<CollectionSnapshot> {
    if (o.full) {
      this.plan?.clear();
      this.workersAt = 0;
    }
    const started = performance.now();
    const seq = ++this.seq;
    const finish = (s: Omit<CollectionSnapshot, 'seq' | 'finishedAt' | 'durationSeconds' | 'lastSuccessAt'>): CollectionSnapshot => {
      const finishedAt = Date.now();
      if (s.ok) this.lastSuccessAt = finishedAt;
      return { seq, finishedAt, durationSeconds: (performance.now() - started) / 1000, lastSuccessAt: this.lastSuccessAt, ...s };
    };
    try {
      const { names, dropped, skipped } = this.watched ? this.watched() : await this.discoverAll();
      const queues = this.plan ? await this.readPlanned(names, this.plan) : await this.readQueues([...names]);
      markDeadLetterQueues(queues);
      const watched = new Set(names);
      for (const name of this.finished.keys()) if (!watched.has(name)) this.finished.delete(name);
      return finish({
        ok: true,
        redisUp: true,
        queues,
        queuesByPrefix: { [this.schema]: queues.length },
        queuesDropped: dropped,
        queuesSkipped: skipped,
      });
    } catch (err) {
      // What was kept may no longer hold after an outage (a restore, a failover): the next good collection reads all.
      this.plan?.clear();
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

  /**
   * A REPEATABLE READ, READ ONLY transaction (one snapshot) with a statement timeout, no JIT (these plans are tiny) and
   * generic plans for named statements.
   */
  private transaction<T>(body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(
      this.pool,
      { timeoutMs: this.timeoutMs, mode: 'ISOLATION LEVEL REPEATABLE READ READ ONLY', settings: { jit: 'off', plan_cache_mode: 'force_generic_plan' } },
      body,
    );
  }
}

/**
 * Whether the server answered: an error with a SQLSTATE, except the connection classes (08: connection exception;
 * 57P01-57P03: shutting down, crashed, starting up), which mean it is not there to read from.
 */
export function answered(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('08') && !/^57P0[1-3]$/.test(code);
}

/** A sentence a user can act on; never the connection string. */
export function describeError(err: unknown, schema: string): string {
  const e = err as { code?: string; message?: string };
  if (e.code === '57014')
    return `PostgreSQL collection exceeded its statement timeout (schema ${schema}); a lock held on BullMQ's tables or an overloaded server`;
  if (e.code === '42P01' || e.code === '3F000')
    return `BullMQ's tables are not in schema "${schema}" (is the schema option right, and has BullMQ migrated it?)`;
  if (e.code === '42501') return `permission denied reading schema "${schema}": grant USAGE on the schema and SELECT on its tables (docs/postgres.md §2.5)`;
  return `PostgreSQL collection failed: ${e.code ? `${e.code} ` : ''}${e.message ?? String(err)}`;
}
