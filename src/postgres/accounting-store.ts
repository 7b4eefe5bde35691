// Owns queuelens's own schema on PostgreSQL (docs/postgres.md §2.4): the event lease, the reader state (watermark,
// delivered ids, per-queue cursors), the per-queue event accounting and the leader's shared collection
// (snapshot-store.ts), plus the one fenced transaction that commits
// reader state and accounting together, and the read-back every replica renders. BullMQ's schema is only read.
//
// The accounting of a queue is one jsonb object with the same field names as the Redis hash (events/accounting.ts),
// so parseQueueHash() turns it into the same QueueEventStats on both backends.
import pg from 'pg';
import { parseQueueHash, SCRIPT_FIELDS } from '../events/accounting.js';
import type { QueueEventAccounting } from '../domain/event-accounting.js';
import type { EventReaderState } from './event-reader.js';
import { inTransaction, type TransactionOptions } from './transaction.js';
import { createOwnSchema } from '../jobs/postgres-store.js';

/** queuelens's own schema on PostgreSQL, unless configured. */
export const DEFAULT_OWN_SCHEMA = 'queuelens';

/** The heartbeat field every queue's accounting points at (`r|hb`): one reader per BullMQ schema. */
export const PG_HEARTBEAT_FIELD = 'hb|all';

/** Tables in the own schema: one row per followed BullMQ schema (`source`) or per queue of it. */
function ddl(s: string): string {
  return `
CREATE TABLE IF NOT EXISTS ${s}.event_lease (
  source     text PRIMARY KEY,
  holder     text NOT NULL,
  fence      bigint NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS ${s}.event_reader (
  source       text PRIMARY KEY,
  fence        bigint NOT NULL,
  watermark    bigint NOT NULL,
  delivered    bigint[] NOT NULL,
  queues       jsonb NOT NULL,
  heartbeat_ms bigint NOT NULL,
  committed_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS ${s}.event_accounting (
  source     text NOT NULL,
  queue      text NOT NULL,
  fields     jsonb NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (source, queue)
);
CREATE TABLE IF NOT EXISTS ${s}.collection_snapshot (
  source     text PRIMARY KEY,
  encoded    text NOT NULL,
  expires_ms bigint NOT NULL
);`;
}

/** SQLSTATEs of a schema or table that does not exist (yet). */
const MISSING = new Set(['3F000', '42P01']);

export function isMissingRelation(err: unknown): boolean {
  return MISSING.has((err as { code?: string }).code ?? '');
}

/**
 * Creates the own schema and its tables when absent. Idempotent and safe from several replicas at once: serialized by
 * a transaction-scoped advisory lock (CREATE … IF NOT EXISTS alone races on the catalogs). The schema is created only
 * when missing, so a role granted an existing schema (docs/postgres.md §2.5) needs no CREATE on the database.
 */
export async function ensureOwnSchema(pool: pg.Pool, ownSchema: string, timeoutMs = 5_000): Promise<void> {
  await inTransaction(pool, { timeoutMs }, async (c) => {
    await createOwnSchema(c, ownSchema);
    await c.query(ddl(pg.escapeIdentifier(ownSchema)));
  });
}

/** What a leader persisted: the reader's state, or undefined before any commit. */
export async function loadReaderState(c: pg.ClientBase, ownSchema: string, source: string): Promise<EventReaderState | undefined> {
  const s = pg.escapeIdentifier(ownSchema);
  const { rows } = await c.query<{ watermark: string; delivered: string[]; queues: Array<[string, string | null]> }>(
    `SELECT watermark::text AS watermark, delivered::text[] AS delivered, queues FROM ${s}.event_reader WHERE source = $1`,
    [source],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    watermark: BigInt(r.watermark),
    delivered: r.delivered.map(BigInt),
    queues: r.queues.map(([q, cursor]) => [q, cursor === null ? null : BigInt(cursor)]),
  };
}

/** The persisted accounting fields of some queues of `source`, by queue. */
export async function loadAccounting(
  c: pg.ClientBase,
  ownSchema: string,
  source: string,
  queues: readonly string[],
): Promise<Map<string, Record<string, string>>> {
  const s = pg.escapeIdentifier(ownSchema);
  const { rows } = await c.query<{ queue: string; fields: Record<string, unknown> }>(
    `SELECT queue, fields FROM ${s}.event_accounting WHERE source = $1 AND queue = ANY($2::text[])`,
    [source, queues],
  );
  return new Map(rows.map((r) => [r.queue, asHash(r.fields)]));
}

function asHash(fields: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = typeof v === 'string' ? v : String(v);
  return out;
}

export interface QueueCommit {
  queue: string;
  /** Absolute values of the fields that changed (accounting fields, `r|lost`, `r|hb`, `r|grace_ms`). */
  fields: Record<string, number | string>;
  /** Database-clock ms of the last row read when more rows wait unread (the lag is aged from it); null: caught up. */
  behindSinceMs: number | null;
}

export interface EventCommit {
  source: string;
  fence: bigint;
  state: EventReaderState;
  /** How long ago (ms) the poll whose reads this commit covers ran: the heartbeat is the database clock minus this. */
  readAgoMs: number;
  queues: QueueCommit[];
}

/**
 * A transaction that locks the lease row (holdsFence) ends on the server when its client goes quiet in it for `idleMs`:
 * a leader frozen mid-commit (paused, starved of CPU) would otherwise hold the row, and so the lease, from every other
 * replica until it runs again. Its commit then fails, and it reloads the committed state like after any failed commit.
 */
function fencedTransaction(timeoutMs: number, idleMs: number): TransactionOptions {
  return { timeoutMs, settings: { idle_in_transaction_session_timeout: String(Math.max(1, Math.floor(idleMs))) } };
}

/**
 * Commits the reader state and the accounting of the queues that changed in one transaction that first checks the
 * fence: `UPDATE event_lease … WHERE fence = $mine` locks the lease row (a takeover's UPDATE of that row waits for this
 * commit, or this one finds the new fence) and matches nothing once another replica took the lease. Returns false
 * (and writes nothing) when fenced out.
 */
export async function commitEventState(pool: pg.Pool, ownSchema: string, commit: EventCommit, timeoutMs = 5_000, idleMs = timeoutMs): Promise<boolean> {
  const s = pg.escapeIdentifier(ownSchema);
  return inTransaction(pool, fencedTransaction(timeoutMs, idleMs), async (c) => {
    if (!(await holdsFence(c, s, commit.source, commit.fence))) return false;
    const nowMs = '(extract(epoch FROM clock_timestamp()) * 1000)::bigint';
    await c.query(
      `INSERT INTO ${s}.event_reader AS r (source, fence, watermark, delivered, queues, heartbeat_ms, committed_at)
       VALUES ($1, $2, $3, $4::bigint[], $5::jsonb, ${nowMs} - $6::bigint, clock_timestamp())
       ON CONFLICT (source) DO UPDATE SET fence = EXCLUDED.fence, watermark = EXCLUDED.watermark, delivered = EXCLUDED.delivered,
         queues = EXCLUDED.queues, heartbeat_ms = EXCLUDED.heartbeat_ms, committed_at = EXCLUDED.committed_at`,
      [
        commit.source,
        commit.fence.toString(),
        commit.state.watermark.toString(),
        commit.state.delivered.map(String),
        JSON.stringify((commit.state.queues ?? []).map(([q, cursor]) => [q, cursor === null ? null : cursor.toString()])),
        Math.max(0, Math.round(commit.readAgoMs)),
      ],
    );
    if (commit.queues.length > 0) {
      await c.query(
        `WITH now AS (SELECT ${nowMs} AS ms)
         INSERT INTO ${s}.event_accounting AS a (source, queue, fields, updated_at)
         SELECT $1, u.queue,
                u.fields || jsonb_build_object('${SCRIPT_FIELDS.commitMs}', now.ms,
                  '${SCRIPT_FIELDS.lagMs}', CASE WHEN u.behind IS NULL THEN 0 ELSE GREATEST(0, now.ms - u.behind) END),
                clock_timestamp()
           FROM unnest($2::text[], $3::jsonb[], $4::bigint[]) AS u(queue, fields, behind), now
         ON CONFLICT (source, queue) DO UPDATE SET fields = a.fields || EXCLUDED.fields, updated_at = EXCLUDED.updated_at`,
        [
          commit.source,
          commit.queues.map((q) => q.queue),
          commit.queues.map((q) => JSON.stringify(q.fields)),
          commit.queues.map((q) => (q.behindSinceMs === null ? null : String(Math.round(q.behindSinceMs)))),
        ],
      );
    }
    return true;
  });
}

/**
 * Locks the lease row for this transaction if it still carries `fence`: a takeover (which updates that row) then waits
 * for the transaction, or the transaction finds the new fence and must write nothing.
 */
async function holdsFence(c: pg.ClientBase, quotedOwnSchema: string, source: string, fence: bigint): Promise<boolean> {
  const r = await c.query(`UPDATE ${quotedOwnSchema}.event_lease SET fence = fence WHERE source = $1 AND fence = $2`, [source, fence.toString()]);
  return r.rowCount === 1;
}

/**
 * Deletes, fenced, the accounting of queues of `source` not in `keep` and not committed for `retentionMs` (database
 * clock): queues gone (obliterated, or no longer discovered) that long. The deleted queue names, or undefined when
 * fenced out.
 */
export async function deleteGoneAccounting(
  pool: pg.Pool,
  ownSchema: string,
  o: { source: string; fence: bigint; keep: readonly string[]; retentionMs: number },
  timeoutMs = 5_000,
  idleMs = timeoutMs,
): Promise<string[] | undefined> {
  const s = pg.escapeIdentifier(ownSchema);
  return inTransaction(pool, fencedTransaction(timeoutMs, idleMs), async (c) => {
    if (!(await holdsFence(c, s, o.source, o.fence))) return undefined;
    const { rows } = await c.query<{ queue: string }>(
      `DELETE FROM ${s}.event_accounting
        WHERE source = $1 AND NOT (queue = ANY($2::text[])) AND updated_at < clock_timestamp() - $3 * interval '1 millisecond'
        RETURNING queue`,
      [o.source, o.keep, Math.max(0, Math.floor(o.retentionMs))],
    );
    return rows.map((r) => r.queue);
  });
}

export interface ReadBackOptions {
  /** BullMQ's schema (the `prefix` of every queue). */
  schema: string;
  ownSchema?: string;
  statementTimeoutMs?: number;
}

/**
 * The committed accounting of every queue of `schema`, as the Redis read-back produces it (events/read-back.ts), lag
 * aged on the database clock from the last commit and the leader's heartbeat. Empty before any leader committed (the
 * own schema may not exist yet). Read-only: every replica calls it, leader or not.
 */
export async function readPostgresEventAccounting(pool: pg.Pool, o: ReadBackOptions): Promise<QueueEventAccounting[]> {
  const s = pg.escapeIdentifier(o.ownSchema ?? DEFAULT_OWN_SCHEMA);
  const timeout = Math.max(1, Math.floor(o.statementTimeoutMs ?? 5_000));
  try {
    return await inTransaction(pool, { timeoutMs: timeout, mode: 'READ ONLY' }, async (c) => {
      const { rows } = await c.query<{ queue: string; fields: Record<string, unknown>; now_ms: string; heartbeat_ms: string | null }>(
        `SELECT a.queue, a.fields, (extract(epoch FROM clock_timestamp()) * 1000)::bigint::text AS now_ms,
                (SELECT r.heartbeat_ms::text FROM ${s}.event_reader r WHERE r.source = $1) AS heartbeat_ms
           FROM ${s}.event_accounting a WHERE a.source = $1 ORDER BY a.queue`,
        [o.schema],
      );
      return rows.map((r) => {
        const heartbeats: Record<string, string> = r.heartbeat_ms === null ? {} : { [PG_HEARTBEAT_FIELD]: r.heartbeat_ms };
        return { queue: { prefix: o.schema, name: r.queue }, stats: parseQueueHash(asHash(r.fields), Number(r.now_ms), heartbeats) };
      });
    });
  } catch (err) {
    if (isMissingRelation(err)) return [];
    throw err;
  }
}
