// An exact reader of BullMQ's PostgreSQL `event` table under concurrent writers (docs/postgres.md §2.3).
//
// Ids come from one global sequence and rows commit out of id order, so a forward `id > cursor` read skips a row whose
// transaction commits after a later id was read. This reader keeps a watermark F (every event with id <= F that will
// ever be visible has been delivered), re-reads the short window above it and remembers which ids of the window it
// delivered. F moves to the sequence head V read at poll k once (a) a later snapshot's xmin has passed the xmax of the
// snapshot of poll k+1, and (b) none of the transactions that held a write lock on `event` at poll k+1 still held it
// at a poll before that snapshot: every transaction that took an id <= V(k) then has ended, and the poll that proves
// it read (in that same snapshot) every committed row up to V(k). (a) alone is not enough: an INSERT takes its id
// (the column default nextval) before PostgreSQL gives its transaction an xid, but after it locked `event`.
//
// Loss: BullMQ trims by id (`id <= head - maxLenEvents`) and keeps no lifetime counter, so rows trimmed unread cannot
// be counted; the reader proves "nothing lost" at every poll and reports each id range in which unread rows of a queue
// may have been trimmed (PossibleLoss).
import pg from 'pg';
import type { StreamEntry } from '../events/lifecycle.js';
import { DEFAULT_BULLMQ_SCHEMA } from './snapshot.js';
import { inTransaction } from './transaction.js';

export interface PgEvent {
  queue: string;
  id: bigint;
  event: string;
  data: Record<string, unknown>;
  /** Database clock, epoch ms (BullMQ's created_at_ms). */
  createdAtMs: number;
}

/** Unread rows of `queue` with ids in (fromId, toId] may have been trimmed before this reader saw them. */
export interface PossibleLoss {
  queue: string;
  fromId: bigint;
  toId: bigint;
}

export interface PollResult {
  events: PgEvent[];
  possibleLoss: PossibleLoss[];
  /** The watermark after this poll. */
  watermark: bigint;
  /** Ids above the watermark already delivered (the window that is re-read). */
  window: number;
  /** Queues whose page was full: more rows wait above what this poll read (poll again at once). */
  behind: string[];
}

/** What a leader persists to resume exactly (with its accounting, in one transaction). */
export interface EventReaderState {
  watermark: bigint;
  delivered: bigint[];
  /**
   * Queues this reader has read: null for one that follows the watermark, an id for one still catching up on the
   * history it held when first seen. A queue not listed is read from its oldest retained row.
   */
  queues?: Array<[queue: string, cursor: bigint | null]>;
}

export interface EventReaderOptions {
  schema?: string;
  /** Rows per queue per poll. */
  pageSize?: number;
  /** Per statement, in ms. */
  statementTimeoutMs?: number;
  /** Resume from a persisted state; default: from the start of what the table holds. */
  state?: EventReaderState;
}

/** BullMQ's default `opts.maxLenEvents`. */
const DEFAULT_MAX_LEN_EVENTS = 10_000n;

const MAX_CANDIDATES = 64;

interface Candidate {
  /** Sequence head read at some poll. */
  v: bigint;
  /** xmax of the following poll's snapshot; undefined until that poll. */
  bound?: bigint;
  /** The transactions (virtual ids) writing `event` at the following poll; undefined until that poll. */
  writers?: ReadonlySet<string>;
  /** None of `writers` held its lock any more at an earlier poll: snapshots taken from the next poll on see them ended. */
  cleared?: boolean;
}

interface Row extends EventColumns {
  xmin: string;
  xmax: string;
  head: string;
  /** Virtual transaction ids of the other sessions holding RowExclusiveLock on `event` (read after the snapshot). */
  writers: string[];
  queue: string | null;
  max_len: string | null;
  /** The queue's first row above its cursor, delivered or not (where trimming stopped). */
  first_id: string | null;
}

/** The columns of an event row the lifecycle needs; `returnvalue`, `failedReason` and the rest stay in the database. */
export interface EventColumns {
  id: string | null;
  event: string | null;
  job_id: string | null;
  prev: string | null;
  delay: string | null;
  name: string | null;
  dedup_id: string | null;
  created_at_ms: string | null;
}

/** Selects EventColumns of the event row aliased `e` (text, as the lifecycle reads them). */
export const EVENT_COLUMNS_SQL = `e.id::text AS id, e.event, e.data->>'jobId' AS job_id, e.data->>'prev' AS prev, e.data->>'delay' AS delay,
  e.data->>'name' AS name, e.data->>'deduplicatedJobId' AS dedup_id, e.created_at_ms::text AS created_at_ms`;

/** An event row as read with EVENT_COLUMNS_SQL (its id not null). */
export function eventOf(queue: string, r: EventColumns): PgEvent {
  const data: Record<string, unknown> = {};
  if (r.job_id !== null) data.jobId = r.job_id;
  if (r.prev !== null) data.prev = r.prev;
  if (r.delay !== null) data.delay = r.delay;
  if (r.name !== null) data.name = r.name;
  if (r.dedup_id !== null) data.deduplicatedJobId = r.dedup_id;
  return { queue, id: BigInt(r.id ?? '0'), event: r.event ?? '', data, createdAtMs: Number(r.created_at_ms) };
}

function pollSql(s: string): string {
  // One statement, one snapshot: the snapshot's xmin/xmax, the sequence head (read after the snapshot was taken), and
  // per queue its trim setting and the rows above the watermark on the primary key (queue, id), only the columns the
  // lifecycle reads (a `completed` row carries the whole return value). And the transactions writing `event` now:
  // every INSERT holds RowExclusiveLock on it from before it takes its id (the column default) to its end, while its
  // xid comes only at its first tuple write. pg_locks is a live view (not of the snapshot) readable by any role.
  return `
WITH snap AS (
  SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
         pg_snapshot_xmax(pg_current_snapshot())::text AS xmax,
         (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ${s}.event_seq)::text AS head,
         ARRAY(SELECT l.virtualtransaction FROM pg_locks l
                WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND l.relation = $5::text::regclass AND l.mode = 'RowExclusiveLock' AND l.granted
                  AND l.pid IS DISTINCT FROM pg_backend_pid()) AS writers
),
page AS (
  SELECT q.ord, q.name AS queue, m.value AS max_len, f.id::text AS first_id, ${EVENT_COLUMNS_SQL}
    FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS q(name, after, ord)
    LEFT JOIN ${s}.meta m ON m.queue = q.name AND m.field = 'opts.maxLenEvents'
    LEFT JOIN LATERAL (SELECT ev.id FROM ${s}.event ev WHERE ev.queue = q.name AND ev.id > q.after ORDER BY ev.id LIMIT 1) f ON true
    LEFT JOIN LATERAL (
      SELECT ev.id, ev.event, ev.data, ev.created_at_ms
        FROM ${s}.event ev WHERE ev.queue = q.name AND ev.id > q.after AND ev.id <> ALL($4::bigint[]) ORDER BY ev.id LIMIT $3) e ON true
)
SELECT snap.xmin, snap.xmax, snap.head, snap.writers, page.*
  FROM snap LEFT JOIN page ON true
 ORDER BY page.ord, page.id::bigint`;
}

export class PostgresEventReader {
  private readonly quoted: string;
  /** The event relation's qualified name (the poll casts it to regclass). */
  private readonly eventRelation: string;
  private readonly pageSize: number;
  private readonly timeoutMs: number;
  private watermark: bigint;
  private readonly delivered = new Set<bigint>();
  /** Known queues: null = follows the watermark; an id = catching up from there. */
  private readonly cursors = new Map<string, bigint | null>();
  /** Per queue, the highest id a possible loss was reported up to (each range is reported once). */
  private readonly lossReported = new Map<string, bigint>();
  private fresh: boolean;
  private candidates: Candidate[] = [];
  private listener: pg.Client | undefined;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    opts: EventReaderOptions = {},
  ) {
    this.quoted = pg.escapeIdentifier(opts.schema ?? DEFAULT_BULLMQ_SCHEMA);
    this.eventRelation = `${this.quoted}.event`;
    this.pageSize = Math.max(1, opts.pageSize ?? 1_000);
    this.timeoutMs = Math.max(1, Math.floor(opts.statementTimeoutMs ?? 5_000));
    this.watermark = opts.state?.watermark ?? 0n;
    for (const id of opts.state?.delivered ?? []) if (id > this.watermark) this.delivered.add(id);
    for (const [queue, cursor] of opts.state?.queues ?? []) this.cursors.set(queue, cursor);
    // A reader with no state starts at 0: every queue it sees on its first poll simply follows the watermark.
    this.fresh = opts.state === undefined;
  }

  state(): EventReaderState {
    return {
      watermark: this.watermark,
      delivered: [...this.delivered].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      queues: [...this.cursors],
    };
  }

  /**
   * Queues no longer read (gone from discovery): each keeps a cursor at the watermark, so if it is listed again its
   * rows committed meanwhile are read from there, not skipped as the watermark moved on without it. (Rows of its
   * window delivered before, above that cursor, are skipped while they are in the delivered set.)
   */
  park(queues: Iterable<string>): void {
    for (const q of queues) if (this.cursors.get(q) === null) this.cursors.set(q, this.watermark);
  }

  /** Forgets queues entirely (their accounting was deleted): listed again, each is read from its oldest retained row. */
  forget(queues: Iterable<string>): void {
    for (const q of queues) {
      this.cursors.delete(q);
      this.lossReported.delete(q);
    }
  }

  /** One read of the given queues: the events not delivered before, in id order per queue. */
  async poll(queues: string[]): Promise<PollResult> {
    const before = this.watermark;
    // A reader with no state meets every queue of its first poll here: what those queues trimmed before it is their
    // history, not a loss (docs/postgres.md §2.3, "not counted"); their loss ranges start above this poll's cutoff.
    const firstSight = new Set<string>();
    for (const q of queues) {
      if (this.cursors.has(q)) continue;
      this.cursors.set(q, this.fresh ? null : 0n);
      if (this.fresh) firstSight.add(q);
    }
    this.fresh = false;
    const after = queues.map((q) => (this.cursors.get(q) ?? before).toString());
    // The window's rows delivered already are not sent again (PostgreSQL hashes the list): a page holds only rows
    // not delivered, so its last row still bounds what this poll proves. Pages are read in id order by the primary
    // key; a bitmap scan would read and sort every row above the cursor to return the first page.
    const rows = await inTransaction(
      this.pool,
      { timeoutMs: this.timeoutMs, mode: 'READ ONLY', settings: { jit: 'off', enable_bitmapscan: 'off' } },
      async (c) => (await c.query<Row>(pollSql(this.quoted), [queues, after, this.pageSize, [...this.delivered].map(String), this.eventRelation])).rows,
    );
    const first = rows[0]!;
    const xmin = BigInt(first.xmin);
    const xmax = BigInt(first.xmax);
    const head = BigInt(first.head);
    const writers = new Set(first.writers);

    const events: PgEvent[] = [];
    const lastOfFullQueue = new Map<string, bigint>();
    const maxLen = new Map<string, bigint>();
    const firstRead = new Map<string, bigint>();
    const readOf = new Map<string, number>();
    for (const r of rows) {
      if (r.queue === null) continue;
      if (!maxLen.has(r.queue)) {
        maxLen.set(r.queue, parseMaxLen(r.max_len));
        if (r.first_id !== null) firstRead.set(r.queue, BigInt(r.first_id));
      }
      if (r.id === null) continue;
      const id = BigInt(r.id);
      const n = (readOf.get(r.queue) ?? 0) + 1;
      readOf.set(r.queue, n);
      if (n === this.pageSize) lastOfFullQueue.set(r.queue, id);
      // Above the watermark a row may be read again (the window): the delivered set makes that idempotent. At or
      // below it only a catching-up queue reads, from a cursor that only moves forward.
      if (id > before) {
        if (this.delivered.has(id)) continue;
        this.delivered.add(id);
      }
      events.push(eventOf(r.queue, r));
    }

    // Trimming deletes a queue's ids <= head - maxLenEvents, a prefix: unread rows above the previous watermark are at
    // risk once that cutoff passed it, and only below the first row still there. A queue's history from before this
    // reader first saw it is read as far as it is retained; whether older rows were trimmed is not knowable.
    const possibleLoss: PossibleLoss[] = [];
    for (const [queue, len] of maxLen) {
      if (len <= 0n || this.cursors.get(queue) !== null) continue;
      const first = firstRead.get(queue);
      const cutoff = first !== undefined && first - 1n < head - len ? first - 1n : head - len;
      let from = before;
      const reported = this.lossReported.get(queue);
      if (reported !== undefined && reported > from) from = reported;
      if (cutoff > from) {
        if (!firstSight.has(queue)) possibleLoss.push({ queue, fromId: from, toId: cutoff });
        this.lossReported.set(queue, cutoff);
      }
    }
    // A catching-up queue whose page was not full has read everything above its cursor: it follows the watermark.
    const catchingUp = new Set<string>();
    for (const q of queues) {
      if (this.cursors.get(q) === null) continue;
      const last = lastOfFullQueue.get(q);
      if (last === undefined) this.cursors.set(q, null);
      else {
        this.cursors.set(q, last);
        catchingUp.add(q);
      }
    }

    // Advance the watermark: candidates get their bound and writers from this poll, then those whose bound is below
    // this snapshot's xmin and whose writers were seen gone at an earlier poll (before this snapshot) are final; a
    // queue whose page was full caps it at its last row read.
    for (const c of this.candidates) {
      c.bound ??= xmax;
      c.writers ??= writers;
    }
    let next = this.watermark;
    for (const c of this.candidates) if (c.cleared === true && c.bound! <= xmin && c.v > next) next = c.v;
    // Writers seen gone now (this poll read the locks after its snapshot) count from the next poll's snapshot on.
    for (const c of this.candidates) if (c.cleared !== true && ![...c.writers!].some((w) => writers.has(w))) c.cleared = true;
    // A following queue whose page was full caps it at its last row read (a catching-up one has its own cursor).
    for (const [q, last] of lastOfFullQueue) if (!catchingUp.has(q) && last < next) next = last;
    if (next > this.watermark) this.watermark = next;
    this.candidates = this.candidates.filter((c) => c.v > this.watermark);
    if (head > this.watermark && !this.candidates.some((c) => c.v === head && c.bound === undefined)) this.candidates.push({ v: head });
    // While a long transaction holds xmin back a candidate is added per poll; dropping the oldest only delays F.
    if (this.candidates.length > MAX_CANDIDATES) this.candidates.splice(0, this.candidates.length - MAX_CANDIDATES);
    for (const id of this.delivered) if (id <= this.watermark) this.delivered.delete(id);

    return { events, possibleLoss, watermark: this.watermark, window: this.delivered.size, behind: [...lastOfFullQueue.keys()] };
  }

  /** Calls `onWake(queue)` for every `bullmq_events` notification (payload = queue), on a dedicated connection. */
  async listen(config: pg.ClientConfig, onWake: (queue: string) => void): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client(config);
    client.on('error', () => undefined);
    client.on('notification', (n) => {
      if (n.channel === 'bullmq_events') onWake(n.payload ?? '');
    });
    await client.connect();
    await client.query('LISTEN bullmq_events');
    this.listener = client;
  }

  async close(): Promise<void> {
    this.closed = true;
    const l = this.listener;
    this.listener = undefined;
    await l?.end().catch(() => undefined);
  }
}

function parseMaxLen(v: string | null): bigint {
  if (v === null) return DEFAULT_MAX_LEN_EVENTS;
  return /^-?\d+$/.test(v) ? BigInt(v) : DEFAULT_MAX_LEN_EVENTS;
}

/**
 * An event row as the entry the Redis lifecycle machine consumes: `ms` is the database clock of the row, the fields
 * it reads are strings as on Redis (`delay` is the due time in ms there too).
 */
export function toStreamEntry(e: PgEvent): StreamEntry {
  const str = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : typeof v === 'string' ? v : JSON.stringify(v));
  return {
    id: `${e.createdAtMs}-${e.id}`,
    ms: e.createdAtMs,
    fields: {
      event: e.event,
      jobId: str(e.data.jobId),
      prev: str(e.data.prev),
      delay: str(e.data.delay),
      name: str(e.data.name),
      deduplicatedJobId: str(e.data.deduplicatedJobId),
    },
  };
}
