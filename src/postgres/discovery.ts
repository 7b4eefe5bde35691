// Owns the set of queues the sidecar watches on BullMQ's PostgreSQL backend: the distinct queues of the schema's
// `meta` table (every Queue writes its version there; obliterate deletes it), read on a slow timer by a loose index
// scan (snapshot.ts, one probe per queue), never on the scrape path; or a fixed list from the configuration. The same
// budget as on Redis (domain/queue-budget.ts): --max-queues, the names' byte budget, names over MAX_NAME_BYTES skipped.
import { capQueues, warnCapped } from '../domain/queue-budget.js';
import { queueId, type QueueRef } from '../domain/queue-ref.js';
import { MAX_NAME_BYTES, type SkipReason } from '../domain/queue-snapshot.js';
import type { Logger } from '../log/logger.js';

/** The most queue names one pass reads: the largest --max-queues, plus one to know there are more. */
const MAX_NAMES_READ = 1_000_001;
/** Skipped queues logged by name at most this many times per process. */
const MAX_SKIP_LOGS = 100;

export interface QueueLister {
  /** Queue names of the schema in byte order, at most `limit`. */
  discover(limit?: number): Promise<string[]>;
}

export interface PostgresDiscoveryOptions {
  lister: QueueLister;
  /** BullMQ's schema: the `prefix` of every queue found. */
  schema: string;
  /** Fixed queue names: no query, these queues. */
  fixedQueues?: readonly string[];
  maxQueues: number;
  log: Logger;
}

export class PostgresQueueDiscovery {
  private known = new Map<string, QueueRef>();
  private watchedNow: QueueRef[] = [];
  private droppedCount = 0;
  private overBudget = 0;
  private tooLong = 0;
  private changes = 0;
  private passes = 0;
  private readonly skipWarned = new Set<string>();

  constructor(private readonly opts: PostgresDiscoveryOptions) {
    if (opts.fixedQueues) this.replace(opts.fixedQueues.map((name) => ({ prefix: opts.schema, name })));
  }

  get isFixed(): boolean {
    return this.opts.fixedQueues !== undefined;
  }

  get prefixes(): readonly string[] {
    return [this.opts.schema];
  }

  /** Grows whenever the set of known queues changes. */
  get generation(): number {
    return this.changes;
  }

  /** The watched queues, in byte order, within the budget. */
  queues(): readonly QueueRef[] {
    return this.watchedNow;
  }

  /** Queues found beyond --max-queues. */
  dropped(): number {
    return this.droppedCount;
  }

  /** Queues of the last pass not watched because of their name. */
  skipped(): Partial<Record<SkipReason, number>> {
    const out: Partial<Record<SkipReason, number>> = {};
    if (this.tooLong > 0) out.name_too_long = this.tooLong;
    if (this.overBudget > 0) out.exposition_size = this.overBudget;
    return out;
  }

  completedPasses(): number {
    return this.passes;
  }

  /** The snapshot of the collection: the names to read and what was left out. */
  watched(): { names: string[]; dropped: number; skipped: Partial<Record<SkipReason, number>> } {
    return { names: this.watchedNow.map((q) => q.name), dropped: this.droppedCount, skipped: this.skipped() };
  }

  /** One pass: the schema's queues now. New ones are logged as discovered, vanished ones as disappeared. Throws when the query fails. */
  async runPass(): Promise<void> {
    if (this.isFixed) {
      this.passes += 1;
      return;
    }
    const names = await this.opts.lister.discover(MAX_NAMES_READ);
    let tooLong = 0;
    const found: QueueRef[] = [];
    for (const name of names) {
      const bytes = Buffer.byteLength(name);
      if (bytes <= MAX_NAME_BYTES) {
        found.push({ prefix: this.opts.schema, name });
        continue;
      }
      tooLong += 1;
      if (!this.skipWarned.has(name) && this.skipWarned.size < MAX_SKIP_LOGS) {
        this.skipWarned.add(name);
        this.opts.log.warn(
          { prefix: this.opts.schema, queue: `${name.slice(0, 64)}…`, bytes, reason: 'name_too_long' },
          `queue not monitored: its name is longer than ${MAX_NAME_BYTES} bytes; counted in bullmq_exporter_queues_dropped{reason="name_too_long"}`,
        );
      }
    }
    this.tooLong = tooLong;
    this.replace(found);
    this.passes += 1;
  }

  private replace(found: readonly QueueRef[]): void {
    const next = new Map(found.map((q) => [queueId(q), q]));
    let changed = false;
    for (const [id, q] of next)
      if (!this.known.has(id)) {
        changed = true;
        this.opts.log.info({ prefix: q.prefix, queue: q.name }, 'queue discovered');
      }
    for (const [id, q] of this.known)
      if (!next.has(id)) {
        changed = true;
        this.opts.log.info({ prefix: q.prefix, queue: q.name }, 'queue disappeared');
      }
    this.known = next;
    const capped = capQueues(next.values(), this.opts.maxQueues);
    warnCapped(
      (fields, message) => this.opts.log.warn(fields, message),
      { overBudget: this.overBudget, dropped: this.droppedCount },
      capped,
      this.opts.maxQueues,
    );
    this.watchedNow = capped.watched;
    this.overBudget = capped.overBudget;
    this.droppedCount = capped.dropped;
    if (changed) this.changes += 1;
  }
}
