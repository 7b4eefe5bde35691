// Owns the event pipeline of the sidecar on PostgreSQL (docs/postgres.md §2.3-2.4): while this replica holds the fenced
// lease of a BullMQ schema it reads the `event` table with the exact reader (event-reader.ts), feeds every queue's rows
// to the same lifecycle machine as on Redis (events/lifecycle.ts → QueueAccounting), and commits the reader state and
// the accounting in one transaction that checks the fence (accounting-store.ts). It is woken by LISTEN on BullMQ's
// `bullmq_events` channel, with a slow fallback poll (BullMQ skips some NOTIFYs under concurrency, and the watermark
// needs a later snapshot to advance); at rest a pass reads only the sequence head. Replicas that are not leader do
// nothing here; every replica renders the committed accounting with readPostgresEventAccounting().
import pg from 'pg';
import type { Logger } from '../log/logger.js';
import { RepeatLimiter } from '../log/repeat-limiter.js';
import type { EventFollower } from '../domain/backend.js';
import type { QueueChanges } from '../domain/queue-changes.js';
import type { QueueRef } from '../domain/queue-ref.js';
import { QueueAccounting, SCRIPT_FIELDS } from '../events/accounting.js';
import { LIFECYCLE_DEFAULTS, QueueLifecycle, type InFlightBudget, type LifecycleOptions, type StreamEntry } from '../events/lifecycle.js';
import {
  commitEventState,
  deleteGoneAccounting,
  ensureOwnSchema,
  loadAccounting,
  loadReaderState,
  DEFAULT_OWN_SCHEMA,
  PG_HEARTBEAT_FIELD,
  type QueueCommit,
} from './accounting-store.js';
import {
  EVENT_COLUMNS_SQL,
  eventOf,
  PostgresEventReader,
  toStreamEntry,
  type EventColumns,
  type EventReaderState,
  type PgEvent,
  type PossibleLoss,
} from './event-reader.js';
import { PgLease } from './lease.js';
import { inTransaction } from './transaction.js';
import { DEFAULT_BULLMQ_SCHEMA } from './snapshot.js';

export interface PostgresEventFollowerOptions {
  /** The pool to use (not closed by close()), or a connection string for a pool of the follower's own. */
  pool?: pg.Pool;
  connectionString?: string;
  /** BullMQ's schema (the `prefix` label of its queues). */
  schema?: string;
  /** queuelens's own schema: lease, reader state, accounting. Created when absent. */
  ownSchema?: string;
  log: Logger;
  /** Lease duration; a dead leader is replaced within about 1.2 × this. */
  leaseMs?: number;
  lifecycle?: Partial<LifecycleOptions>;
  /** Fallback poll when no NOTIFY arrives. */
  pollMs?: number;
  /** Rows per queue per poll. */
  pageSize?: number;
  statementTimeoutMs?: number;
  /** The leader's heartbeat is committed at least this often while idle (every replica ages lag from it). */
  lagRefreshMs?: number;
  /** Rows already counted replayed (not counted) per queue at a takeover, to know the jobs in flight. */
  rebuildEntries?: number;
  /** Told which queues' rows moved (their state) and whose accounting was committed (change-driven collection). */
  changes?: QueueChanges;
  /** The accounting of a queue no longer listed is deleted once it was not committed for this long. */
  retentionMs?: number;
  /** How often the leader looks for such queues. */
  maintenanceMs?: number;
}

export const PG_EVENT_FOLLOWER_DEFAULTS = {
  leaseMs: 10_000,
  pollMs: 1_000,
  pageSize: 1_000,
  statementTimeoutMs: 5_000,
  lagRefreshMs: 1_000,
  rebuildEntries: 1_000,
  retentionMs: 7 * 86_400_000,
  maintenanceMs: 60_000,
};

/** A fenced commit under `fence` matched no lease row: another term (of another replica, or a later one of this) began. */
class FencedOut extends Error {
  constructor(readonly fence: bigint) {
    super('a fenced commit found another fence');
  }
}
/** Leadership changed while a pass waited on the database: its in-memory state belongs to an old term. */
class TermChanged extends Error {}

interface FollowedQueue {
  name: string;
  acc: QueueAccounting;
  machine: QueueLifecycle;
  /** The `r|lost` value committed (trimmed-before-read rows, see countLoss). */
  lost: number;
  /** Fields written once per term (heartbeat pointer, grace). */
  fresh: boolean;
}

interface Term {
  fence: bigint;
  reader: PostgresEventReader;
  queues: Map<string, FollowedQueue>;
  budget: InFlightBudget;
  /** Local clock of the last commit (the heartbeat is due lagRefreshMs after it). */
  committedAt: number;
  /** Local clock of the next look for queues gone longer than the retention. */
  nextMaintenance: number;
  /**
   * The event sequence head up to which every row has been delivered (a poll read nothing, was behind on no queue,
   * and its watermark passed the head read before it); undefined after any other poll. While the head stays there,
   * no row can have been written since (every row takes an id from the sequence first): the pass skips the poll.
   */
  quietHead?: bigint;
}

export class PostgresEventFollower implements EventFollower {
  private readonly pool: pg.Pool;
  private readonly ownPool: boolean;
  private readonly schema: string;
  private readonly ownSchema: string;
  private readonly opts: typeof PG_EVENT_FOLLOWER_DEFAULTS;
  private readonly lifecycle: LifecycleOptions;
  private readonly lease: PgLease;
  private readonly failureLog = new RepeatLimiter();
  private wanted: string[] | undefined;
  private term: Term | undefined;
  private schemaReady = false;
  private listener: pg.Client | undefined;
  private listening: Promise<void> | undefined;
  private loop: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** A wake-up arrived while a pass ran: run another at once. */
  private woken = false;

  constructor(private readonly o: PostgresEventFollowerOptions) {
    if (o.pool) {
      this.pool = o.pool;
      this.ownPool = false;
    } else {
      if (!o.connectionString) throw new Error('PostgresEventFollower needs a pool or a connection string');
      this.pool = new pg.Pool({ connectionString: o.connectionString, max: 3, connectionTimeoutMillis: 5_000, application_name: 'queuelens:events' });
      this.pool.on('error', () => undefined);
      this.ownPool = true;
    }
    this.schema = o.schema ?? DEFAULT_BULLMQ_SCHEMA;
    this.ownSchema = o.ownSchema ?? DEFAULT_OWN_SCHEMA;
    const d = PG_EVENT_FOLLOWER_DEFAULTS;
    this.opts = {
      leaseMs: o.leaseMs ?? d.leaseMs,
      pollMs: o.pollMs ?? d.pollMs,
      pageSize: o.pageSize ?? d.pageSize,
      statementTimeoutMs: o.statementTimeoutMs ?? d.statementTimeoutMs,
      lagRefreshMs: o.lagRefreshMs ?? d.lagRefreshMs,
      rebuildEntries: o.rebuildEntries ?? d.rebuildEntries,
      retentionMs: o.retentionMs ?? d.retentionMs,
      maintenanceMs: o.maintenanceMs ?? d.maintenanceMs,
    };
    this.lifecycle = { ...LIFECYCLE_DEFAULTS, ...o.lifecycle };
    this.lease = new PgLease({
      pool: this.pool,
      ownSchema: this.ownSchema,
      source: this.schema,
      leaseMs: this.opts.leaseMs,
      log: o.log,
      onChange: (leader) => {
        // Whatever was in memory belongs to the old term: state is reloaded from the database on the next pass.
        this.dropTerm();
        // One lease covers every queue of the schema: the leader writes all of their accounting.
        o.changes?.setWhole(leader);
        if (leader) this.wakeUp();
      },
    });
  }

  get isLeader(): boolean {
    return this.lease.isLeader;
  }

  /** The fence of the current term (0 when not leader); for tests and logs. */
  get fence(): bigint {
    return this.lease.fence;
  }

  /** The queues to follow (from discovery); only those of this follower's BullMQ schema. Takes effect on the next pass. */
  setQueues(queues: readonly QueueRef[]): void {
    this.wanted = [...new Set(queues.filter((q) => q.prefix === this.schema).map((q) => q.name))];
    this.wakeUp();
  }

  /** Starts the loop: creates the own schema when absent, takes part in the lease, reads while leader. */
  start(): Promise<void> {
    if (!this.loop && !this.closing) this.loop = this.run();
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.wakeUp();
      await this.loop?.catch(() => undefined);
      await this.lease.close();
      this.dropTerm();
      await this.stopListening();
      if (this.ownPool) await this.pool.end().catch(() => undefined);
    })();
    return this.closing;
  }

  private async run(): Promise<void> {
    while (!this.closing) {
      try {
        if (!this.schemaReady) {
          await ensureOwnSchema(this.pool, this.ownSchema, this.opts.statementTimeoutMs);
          this.schemaReady = true;
          this.lease.start();
        }
        if (!this.lease.isLeader || this.wanted === undefined) {
          this.dropTerm();
          await this.stopListening();
          await this.sleep(this.opts.leaseMs / 5);
          continue;
        }
        this.listen();
        const fence = this.lease.fence;
        if (this.term?.fence !== fence) this.term = await this.load(fence);
        if (Date.now() >= this.term.nextMaintenance) await this.maintain(this.term);
        const again = await this.pass(this.term);
        this.failureLog.reset();
        if (!again) await this.sleep(this.opts.pollMs);
      } catch (err) {
        if (this.closing) break;
        // Whether a failed commit applied is unknown: the state is reloaded from the database, never guessed.
        this.dropTerm();
        if (err instanceof TermChanged) continue;
        if (err instanceof FencedOut) {
          this.lease.lost('a fenced commit found another fence', err.fence);
          continue;
        }
        const msg = (err as Error).message;
        const r = this.failureLog.check(msg);
        if (r.log) this.o.log.warn({ err: msg, ...(r.repeated ? { repeated: r.repeated } : {}) }, 'event follower pass failed; reloading its state');
        await this.sleep(500);
      }
    }
  }

  /** A new term: the committed reader state and accounting, and the rows already counted replayed uncounted. */
  private async load(fence: bigint): Promise<Term> {
    const state = await inTransaction(this.pool, { timeoutMs: this.opts.statementTimeoutMs }, (c) => loadReaderState(c, this.ownSchema, this.schema));
    const reader = new PostgresEventReader(this.pool, {
      schema: this.schema,
      pageSize: this.opts.pageSize,
      statementTimeoutMs: this.opts.statementTimeoutMs,
      state,
    });
    const term: Term = {
      fence,
      reader,
      queues: new Map(),
      budget: { max: this.lifecycle.maxInFlight, used: 0, holders: new Set() },
      committedAt: 0,
      nextMaintenance: 0,
    };
    this.o.log.info({ schema: this.schema, fence: fence.toString(), watermark: (state?.watermark ?? 0n).toString() }, 'event follower resumes');
    return term;
  }

  /** Loads the accounting of newly followed queues and replays their rows already counted (the jobs in flight). */
  private async follow(term: Term, names: string[]): Promise<void> {
    const state = term.reader.state();
    const cursors = new Map(state.queues ?? []);
    const hashes = await inTransaction(this.pool, { timeoutMs: this.opts.statementTimeoutMs }, (c) => loadAccounting(c, this.ownSchema, this.schema, names));
    const history = await this.history(names, state, cursors);
    for (const name of names) {
      const acc = QueueAccounting.fromHash(hashes.get(name) ?? {});
      const machine = new QueueLifecycle(acc, this.lifecycle, acc.jobNames(), term.budget);
      machine.replay(history.get(name) ?? []);
      term.queues.set(name, { name, acc, machine, lost: Number(hashes.get(name)?.[SCRIPT_FIELDS.lost] ?? 0), fresh: true });
    }
    this.o.changes?.follow(names.map((name) => this.ref(name)));
  }

  /**
   * Up to rebuildEntries of each queue's retained rows that an earlier term already counted, oldest first: those at or
   * below the watermark (or the queue's own cursor while it catches up) and the delivered ids above it.
   */
  private async history(names: string[], state: EventReaderState, cursors: Map<string, bigint | null>): Promise<Map<string, StreamEntry[]>> {
    const known = names.filter((n) => cursors.has(n));
    const out = new Map<string, StreamEntry[]>();
    if (known.length === 0) return out;
    const s = pg.escapeIdentifier(this.schema);
    const upTo = known.map((n) => (cursors.get(n) ?? state.watermark).toString());
    const follows = known.map((n) => cursors.get(n) === null);
    const rows = await inTransaction(this.pool, { timeoutMs: this.opts.statementTimeoutMs, mode: 'READ ONLY' }, async (c) => {
      return (
        await c.query<EventColumns & { queue: string }>(
          `SELECT q.name AS queue, ${EVENT_COLUMNS_SQL}
             FROM unnest($1::text[], $2::bigint[], $3::bool[]) AS q(name, upto, follows)
             CROSS JOIN LATERAL (
               SELECT ev.id, ev.event, ev.data, ev.created_at_ms FROM ${s}.event ev
                WHERE ev.queue = q.name AND (ev.id <= q.upto OR (q.follows AND ev.id = ANY($4::bigint[])))
                ORDER BY ev.id DESC LIMIT $5) e
            ORDER BY q.name, e.id`,
          [known, upTo, follows, state.delivered.map(String), this.opts.rebuildEntries],
        )
      ).rows;
    });
    for (const r of rows) {
      const list = out.get(r.queue) ?? [];
      list.push(toStreamEntry(eventOf(r.queue, r)));
      out.set(r.queue, list);
    }
    return out;
  }

  /** Deletes the accounting of queues gone longer than the retention, fenced; the reader forgets them too. */
  private async maintain(term: Term): Promise<void> {
    term.nextMaintenance = Date.now() + this.opts.maintenanceMs;
    const deleted = await deleteGoneAccounting(
      this.pool,
      this.ownSchema,
      { source: this.schema, fence: term.fence, keep: this.wanted ?? [], retentionMs: this.opts.retentionMs },
      this.opts.statementTimeoutMs,
      this.opts.leaseMs,
    );
    if (deleted === undefined) throw new FencedOut(term.fence);
    this.checkTerm(term);
    if (deleted.length === 0) return;
    term.reader.forget(deleted);
    this.o.changes?.mark(
      deleted.map((n) => this.ref(n)),
      ['accounting'],
    );
    this.o.log.info({ schema: this.schema, forgotten: deleted.length }, 'deleted event accounting of queues gone longer than the retention');
  }

  /** One poll, applied and committed. True when rows wait beyond what the poll could read (poll again at once). */
  private async pass(term: Term): Promise<boolean> {
    const wanted = this.wanted ?? [];
    const wantedSet = new Set(wanted);
    const gone = [...term.queues.keys()].filter((n) => !wantedSet.has(n));
    if (gone.length > 0) {
      term.reader.park(gone);
      this.o.changes?.unfollow(gone.map((n) => this.ref(n)));
      for (const n of gone) {
        term.queues.get(n)?.machine.release();
        term.queues.delete(n);
      }
    }
    const missing = wanted.filter((n) => !term.queues.has(n));
    if (missing.length > 0) await this.follow(term, missing);
    this.checkTerm(term);

    const { delivered: deliveredBefore, watermark: watermarkBefore } = term.reader.state();
    const readAt = Date.now();
    // At rest one statement (the sequence head) instead of a poll of every queue's rows.
    const head = await this.head();
    this.checkTerm(term);
    const quiet = term.quietHead !== undefined && head === term.quietHead && gone.length === 0 && missing.length === 0;
    const r = quiet ? { events: [], possibleLoss: [], watermark: watermarkBefore, window: 0, behind: [] } : await term.reader.poll(wanted);
    this.checkTerm(term);
    if (!quiet) {
      const after = term.reader.state();
      const caughtUp = r.events.length === 0 && r.behind.length === 0 && r.possibleLoss.length === 0 && (after.queues ?? []).every(([, c]) => c === null);
      term.quietHead = caughtUp && after.watermark >= head ? head : undefined;
    }

    const byQueue = new Map<string, PgEvent[]>();
    for (const e of r.events) {
      const list = byQueue.get(e.queue) ?? [];
      list.push(e);
      byQueue.set(e.queue, list);
    }
    const changed = new Set<FollowedQueue>();
    if (r.possibleLoss.length > 0) {
      const lost = await this.countLoss(r.possibleLoss, deliveredBefore, r.events);
      this.checkTerm(term);
      for (const [name, n] of lost) {
        const q = term.queues.get(name);
        if (!q) continue;
        q.lost += n;
        changed.add(q);
        // Rows of this queue are gone unseen, before the ones this poll read: tracked jobs may have moved on.
        q.machine.resetJobs();
        this.o.log.warn({ queue: name, schema: this.schema, lost: n }, 'events were trimmed before the reader saw them');
      }
    }
    for (const [name, events] of byQueue) {
      const q = term.queues.get(name);
      if (!q) continue;
      // On PostgreSQL a stall writes `stalled` alone (no `waiting prev=active` pair to wait for): every poll ends a batch.
      q.machine.apply(events.map(toStreamEntry), true);
      q.machine.takeApplied();
      q.acc.reader('read', events.length);
      changed.add(q);
    }

    const behind = new Set(r.behind);
    const commits: QueueCommit[] = [];
    for (const q of term.queues.values()) {
      const dirty = q.acc.dirtyFields();
      if (!changed.has(q) && dirty.length === 0 && !q.fresh) continue;
      const fields: Record<string, number | string> = {};
      for (let i = 0; i + 1 < dirty.length; i += 2) fields[dirty[i] as string] = Number(dirty[i + 1]);
      fields[SCRIPT_FIELDS.lost] = q.lost;
      if (q.fresh) {
        fields[SCRIPT_FIELDS.heartbeat] = PG_HEARTBEAT_FIELD;
        fields[SCRIPT_FIELDS.graceMs] = 2 * this.opts.lagRefreshMs + this.opts.pollMs;
      }
      const last = byQueue.get(q.name)?.at(-1);
      commits.push({ queue: q.name, fields, behindSinceMs: behind.has(q.name) && last ? last.createdAtMs : null });
    }
    const heartbeatDue = Date.now() - term.committedAt >= this.opts.lagRefreshMs;
    const state = term.reader.state();
    if (commits.length > 0 || heartbeatDue || state.watermark !== watermarkBefore || r.events.length > 0) {
      const ok = await commitEventState(
        this.pool,
        this.ownSchema,
        { source: this.schema, fence: term.fence, state, readAgoMs: Date.now() - readAt, queues: commits },
        this.opts.statementTimeoutMs,
        // Frozen mid-commit, this leader holds the lease row from a takeover no longer than a lease.
        this.opts.leaseMs,
      );
      if (!ok) throw new FencedOut(term.fence);
      term.committedAt = Date.now();
      this.o.changes?.mark(
        commits.map((c) => this.ref(c.queue)),
        ['accounting'],
      );
      // A row is written by the transaction that changed the queue's jobs: its counts are worth a new look (so are
      // those of a queue whose rows were trimmed unread). Marked once committed, so the prompt collection this starts
      // renders the accounting of the same rows.
      const moved = [...changed].map((q) => this.ref(q.name));
      if (moved.length > 0) this.o.changes?.mark(moved, ['state']);
      for (const q of term.queues.values()) {
        q.acc.clearDirty();
        q.fresh = false;
      }
    }
    return behind.size > 0;
  }

  /**
   * Rows of a queue that may have been trimmed unread lie in (fromId, toId] (event-reader.ts). Ids there are global: an
   * id is known when its row is still in the table (any queue) or was delivered (this poll, or earlier above the
   * watermark); every other id of the range counts as lost for the queue. Exact when no other queue reports a range
   * over the same ids and the sequence has no gap there (a rolled-back writer, up to 32 values after a crash); an
   * upper bound otherwise (docs/postgres.md §2.3).
   */
  private async countLoss(ranges: PossibleLoss[], deliveredBefore: readonly bigint[], delivered: readonly PgEvent[]): Promise<Map<string, number>> {
    const s = pg.escapeIdentifier(this.schema);
    const lo = ranges.reduce((m, r) => (r.fromId < m ? r.fromId : m), ranges[0]!.fromId);
    const hi = ranges.reduce((m, r) => (r.toId > m ? r.toId : m), ranges[0]!.toId);
    const present = await inTransaction(this.pool, { timeoutMs: this.opts.statementTimeoutMs, mode: 'READ ONLY' }, async (c) => {
      const { rows } = await c.query<{ id: string }>(`SELECT id::text AS id FROM ${s}.event WHERE id > $1 AND id <= $2`, [lo.toString(), hi.toString()]);
      return rows.map((x) => BigInt(x.id));
    });
    const known = new Set<bigint>([...present, ...deliveredBefore, ...delivered.map((e) => e.id)]);
    const out = new Map<string, number>();
    for (const r of ranges) {
      let inRange = 0n;
      for (const id of known) if (id > r.fromId && id <= r.toId) inRange += 1n;
      const n = Number(r.toId - r.fromId - inRange);
      if (n > 0) out.set(r.queue, (out.get(r.queue) ?? 0) + n);
    }
    return out;
  }

  /** The last id BullMQ's event sequence handed out (taken, committed or not). */
  private async head(): Promise<bigint> {
    const s = pg.escapeIdentifier(this.schema);
    const { rows } = await this.pool.query<{ head: string }>(
      `SELECT (CASE WHEN is_called THEN last_value ELSE last_value - 1 END)::text AS head FROM ${s}.event_seq`,
    );
    return BigInt(rows[0]!.head);
  }

  private checkTerm(term: Term): void {
    if (this.closing || this.term !== term) throw new TermChanged();
  }

  private ref(name: string): QueueRef {
    return { prefix: this.schema, name };
  }

  private dropTerm(): void {
    const t = this.term;
    this.term = undefined;
    if (t) this.o.changes?.unfollow([...t.queues.keys()].map((n) => this.ref(n)));
    for (const q of t?.queues.values() ?? []) q.machine.release();
  }

  /**
   * LISTEN on a connection of its own (not a slot of the pool, which the reads and commits share), made with the pool's
   * settings and re-established after it breaks (PostgreSQL restarted).
   */
  private listen(): void {
    if (this.listener || this.listening || this.closing) return;
    this.listening = (async () => {
      const o = this.pool.options;
      // The pool keeps the password non-enumerable: a spread would drop it.
      const client = new pg.Client({ ...o, password: o.password, application_name: 'queuelens:events:listen' });
      const broken = (): void => {
        if (this.listener !== client) return;
        this.listener = undefined;
        void client.end().catch(() => undefined);
        this.wakeUp();
      };
      client.on('error', broken);
      client.on('end', broken);
      client.on('notification', (n) => {
        if (n.channel === 'bullmq_events') this.wakeUp();
      });
      try {
        await client.connect();
        await client.query('LISTEN bullmq_events');
      } catch (err) {
        await client.end().catch(() => undefined);
        throw err;
      }
      if (this.closing) await client.end().catch(() => undefined);
      else {
        this.listener = client;
        // A NOTIFY sent before LISTEN took effect reached no one: a pass now reads the rows written meanwhile, or they
        // would wait for the fallback poll (the first pass of a term, or one after the connection broke, can end
        // before LISTEN does).
        this.wakeUp();
      }
    })()
      .catch((err: Error) => this.o.log.debug({ err: err.message }, 'LISTEN bullmq_events failed; the fallback poll reads meanwhile'))
      .finally(() => (this.listening = undefined));
  }

  private async stopListening(): Promise<void> {
    await this.listening;
    const c = this.listener;
    this.listener = undefined;
    await c?.end().catch(() => undefined);
  }

  private wakeUp(): void {
    this.woken = true;
    this.wake?.();
  }

  /** Waits `ms` or until woken (NOTIFY, new queue list, leadership, close); a wake-up during the pass skips the wait. */
  private sleep(ms: number): Promise<void> {
    if (this.woken || this.closing) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.wake = undefined;
        this.woken = false;
        resolve();
      };
      const t = setTimeout(done, ms);
      t.unref();
      this.wake = done;
    });
  }
}
