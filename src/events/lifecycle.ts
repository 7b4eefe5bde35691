// Owns the job-lifecycle state machine of one queue: it follows the entries of `<prefix>:<queue>:events` in
// order and turns them into counter increments and latency observations (what each BullMQ event means for
// them: docs/metrics.md).
// Pure: no I/O, no clock. Time is the Redis clock of the entry ids, plus the producer's due time in `delayed`.
import { OTHER_JOB_NAME, type AccountingSink } from './accounting.js';

/** Longest job name kept as a job_name label value, in UTF-8 bytes; longer ones count under `__other__`. */
export const MAX_JOB_NAME_BYTES = 128;

/** The fields the machine uses; the others (returnvalue, failedReason, data, …) are not kept. */
export interface EntryFields {
  event?: string;
  jobId?: string;
  prev?: string;
  delay?: string;
  name?: string;
  /** Of `deduplicated`: the job that was not created (or, with keepLastIfActive, deferred). */
  deduplicatedJobId?: string;
}

export interface StreamEntry {
  id: string;
  /** entryMs(id), parsed once. */
  ms: number;
  fields: EntryFields;
}

/** `ms` part of a stream id (`<ms>-<seq>`). */
export function entryMs(id: string): number {
  const dash = id.indexOf('-');
  return Number(dash < 0 ? id : id.slice(0, dash));
}

/** ioredis returns fields as a flat [k, v, k, v] list. One fixed object shape keeps the hot path monomorphic. */
export function toEntry(id: string, flat: string[]): StreamEntry {
  const fields: EntryFields = { event: undefined, jobId: undefined, prev: undefined, delay: undefined, name: undefined, deduplicatedJobId: undefined };
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const k = flat[i];
    if (k === 'event' || k === 'jobId' || k === 'prev' || k === 'delay' || k === 'name' || k === 'deduplicatedJobId') fields[k] = flat[i + 1];
  }
  return { id, ms: entryMs(id), fields };
}

export interface LifecycleOptions {
  /** Learn `job_name` from `added` events; off = every series has job name ''. */
  jobNameLabel: boolean;
  /** Distinct job names per queue before the rest fold into `__other__`. */
  maxJobNames: number;
  /** Most jobs tracked at once by all the queues sharing an InFlightBudget (see there). */
  maxInFlight: number;
  /** Jobs with no event for this long (Redis clock) are evicted and counted. */
  maxInFlightAgeMs: number;
}

export const LIFECYCLE_DEFAULTS: LifecycleOptions = {
  jobNameLabel: false,
  maxJobNames: 20,
  maxInFlight: 100_000,
  maxInFlightAgeMs: 24 * 3600_000,
};

/**
 * The in-flight cap shared by every queue of one reader: memory is bounded per process, not per queue. When
 * it is full, the queue holding the most jobs gives up its oldest (never the job just added, so the cap can be
 * passed by at most one job per queue): one queue's ghosts (jobs drained or cleaned without an event) never
 * evict another queue's live jobs. `holders` lists the machines sharing it; without it a queue evicts its own.
 */
export interface InFlightBudget {
  readonly max: number;
  used: number;
  holders?: Set<QueueLifecycle>;
}

/** Jobs whose duplicates' deduplications are held at once (see whileActive); beyond, they count at once. */
const MAX_WHILE_ACTIVE = 10_000;

const MUTED: AccountingSink = { count: () => undefined, observe: () => undefined, reader: () => undefined };

/** What the reader knows about one job between events. */
interface JobTrack {
  jobName: string;
  addedMs?: number;
  /** When the job became eligible to run (undefined while delayed, active or waiting for children). */
  eligibleMs?: number;
  dueMs?: number;
  delayedMs?: number;
  activeMs?: number;
  /** Whether a worker took it before: decides wait{attempt}. Undefined when its history predates the reader. */
  taken?: boolean;
  lastMs: number;
}

/**
 * The one empty Map (and Set) a lifecycle reads until it writes its own: a followed queue without traffic holds no
 * collection of its own (four empty ones per queue were ~7 MB at 10,000 queues). Writing to them throws.
 */
class Unwritten<K, V> extends Map<K, V> {
  override set(): this {
    throw new Error('the shared empty map is never written');
  }
}
class UnwrittenSet<T> extends Set<T> {
  override add(): this {
    throw new Error('the shared empty set is never written');
  }
}
const NO_ENTRIES: Map<unknown, unknown> = new Unwritten();
const NO_MEMBERS: Set<unknown> = new UnwrittenSet();
const none = <K, V>(): Map<K, V> => NO_ENTRIES as Map<K, V>;

export class QueueLifecycle {
  private jobs = none<string, JobTrack>();
  private names: Set<string>;
  /** A `waiting prev=active` whose meaning depends on the next entry (stall or retry). */
  private pending: StreamEntry | undefined;
  /** Last entry whose effects are applied, and how many were applied since the last takeApplied(). */
  private appliedId: string | undefined;
  private appliedCount = 0;
  private puts = 0;
  /** Name of the job the previous entry removed (a debounce replace writes `removed`, then `deduplicated`). */
  private removedName: string | undefined;
  /**
   * Deduplications of an add while the job it duplicates was active, by that job's id: with keepLastIfActive
   * BullMQ keeps the last such add and creates it when the active job finishes (its `added` comes right before
   * that job's `completed`/`failed`), so only the others were deduplicated. Decided at that finish.
   */
  private whileActive = none<string, { jobName: string; count: number; lastId: string | undefined }>();
  /** whileActive by the id of the last held duplicate (the one BullMQ would create). */
  private keptIds = none<string, string>();

  constructor(
    private sink: AccountingSink,
    private readonly opts: LifecycleOptions = LIFECYCLE_DEFAULTS,
    knownNames: Iterable<string> = [],
    private readonly budget: InFlightBudget = { max: opts.maxInFlight, used: 0 },
  ) {
    const names = new Set(knownNames);
    this.names = names.size > 0 ? names : (NO_MEMBERS as Set<string>);
    budget.holders?.add(this);
  }

  /** Forgets every job and leaves the shared budget (the queue is no longer followed). */
  release(): void {
    this.resetJobs();
    this.budget.holders?.delete(this);
  }

  /** Ids of the tracked jobs, least recently touched first, at most `limit`. */
  trackedIds(limit: number): string[] {
    const out: string[] = [];
    for (const id of this.jobs.keys()) {
      if (out.length >= limit) break;
      out.push(id);
    }
    return out;
  }

  /**
   * Forgets jobs Redis no longer holds although the stream said nothing: drain(), clean() and obliterate()
   * remove waiting and delayed jobs without a per-job event. Not evictions: they are gone, not dropped.
   */
  forgetGone(ids: readonly string[]): number {
    let n = 0;
    for (const id of ids) {
      if (!this.jobs.has(id)) continue;
      this.forget(id);
      n += 1;
    }
    return n;
  }

  /**
   * Feeds entries in stream order. `atEnd` says the read reached the end of the stream: a trailing
   * `waiting prev=active` then cannot be a stall, because BullMQ writes `stalled` in the same script.
   */
  apply(entries: readonly StreamEntry[], atEnd: boolean): void {
    for (const e of entries) {
      const p = this.pending;
      if (p) {
        this.pending = undefined;
        // BullMQ's stall check writes the pair back to back in one script (moveStalledJobsToWait), so the next
        // entry decides; their ids need not share a millisecond (Redis 7.0 gave them tens of ms apart).
        if (e.fields.event === 'stalled' && e.fields.jobId === p.fields.jobId) {
          this.attemptRequeued(p, true);
          this.applied(p);
          this.applied(e);
          continue;
        }
        this.attemptRequeued(p, false);
        this.applied(p);
      }
      if (e.fields.event === 'waiting' && e.fields.prev === 'active') {
        this.pending = e;
        continue;
      }
      this.handle(e);
      this.applied(e);
    }
    if (atEnd) this.flush();
  }

  /**
   * Replays entries an earlier leader already counted, only to learn which jobs are in flight
   * (after a leader change). Nothing is counted or observed.
   */
  replay(entries: readonly StreamEntry[]): void {
    const sink = this.sink;
    this.sink = MUTED;
    try {
      this.apply(entries, true);
    } finally {
      this.sink = sink;
      this.appliedId = undefined;
      this.appliedCount = 0;
    }
  }

  /** Decides a held `waiting prev=active` as a retry (the stream ended after it). */
  flush(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    this.attemptRequeued(p, false);
    this.applied(p);
  }

  /** Id of the last applied entry and how many were applied since the previous call. */
  takeApplied(): { id: string | undefined; count: number } {
    const out = { id: this.appliedId, count: this.appliedCount };
    this.appliedCount = 0;
    return out;
  }

  /** Forgets every job (after a gap in the stream their state would produce wrong latencies). */
  resetJobs(): void {
    this.budget.used -= this.jobs.size;
    this.jobs.clear();
    this.pending = undefined;
    // Held deduplications whose outcome can no longer be seen: counted as deduplications, as before.
    for (const id of [...this.whileActive.keys()]) this.settleWhileActive(id);
  }

  get inFlight(): number {
    return this.jobs.size;
  }

  private applied(e: StreamEntry): void {
    this.appliedId = e.id;
    this.appliedCount += 1;
  }

  private handle(e: StreamEntry): void {
    const f = e.fields;
    const jobId = f.jobId;
    const ms = e.ms;
    const removedJustBefore = this.removedName;
    this.removedName = undefined;
    if (jobId === undefined) return; // queue-level events: paused, resumed, drained, cleaned, custom
    switch (f.event) {
      case 'added': {
        const deferred = this.deferredOf(jobId);
        if (deferred) {
          // The add kept by keepLastIfActive, created now: an add, not a deduplication; the ones it replaced were.
          this.whileActive.delete(deferred.of);
          this.keptIds.delete(jobId);
          this.countDeduplicated(deferred.entry.jobName, deferred.entry.count - 1);
        }
        const jobName = this.label(f.name);
        this.put(jobId, { jobName, addedMs: ms, taken: false, lastMs: ms });
        this.sink.count('added', jobName);
        return;
      }
      case 'waiting': {
        const t = this.track(jobId, ms, f.prev === undefined ? false : undefined);
        if (f.prev === 'delayed' && t.dueMs !== undefined) {
          // Promotion is lazy: use the due time, not the promotion entry, unless promoted early (promote()).
          t.eligibleMs = Math.min(ms, Math.max(t.dueMs, t.delayedMs ?? t.dueMs));
        } else {
          t.eligibleMs = ms;
        }
        if (f.prev === 'completed' || f.prev === 'failed') {
          // job.retry() of a finished job: its first end was observed then; this run's end-to-end counts
          // from the retry, the moment it was enqueued again.
          t.taken = true;
          t.addedMs ??= ms;
        }
        t.dueMs = undefined;
        t.delayedMs = undefined;
        return;
      }
      case 'delayed': {
        const t = this.jobs.get(jobId);
        // Backoff retry (or DelayedError). A job not known at all is one whose `added` (written just before
        // the `delayed` of a delayed add) the reader did not see: decided as a retry whose start it missed
        // (endAttempt counts that unmatched), like an unknown job's `waiting prev=active`. A known job that
        // is not active is a delay change (changeDelay) or the `delayed` of its own add: no attempt ended.
        if (t?.activeMs !== undefined || !t) {
          const tt = t ?? this.track(jobId, ms, true);
          this.endAttempt(tt, 'retried', ms);
          this.sink.count('retried', tt.jobName);
        }
        const due = Number(f.delay);
        const tt = this.track(jobId, ms, undefined);
        tt.dueMs = Number.isFinite(due) ? due : ms;
        tt.delayedMs = ms;
        tt.eligibleMs = undefined;
        return;
      }
      case 'active': {
        const t = this.track(jobId, ms, undefined);
        if (t.eligibleMs !== undefined && t.taken !== undefined) {
          this.sink.observe('wait', t.taken ? 'retry' : 'first', t.jobName, ms - t.eligibleMs);
        }
        t.taken = true;
        t.activeMs = ms;
        t.eligibleMs = undefined;
        return;
      }
      case 'completed':
      case 'failed': {
        const outcome = f.event;
        const t = this.jobs.get(jobId);
        const jobName = t?.jobName ?? this.unknownName();
        if (t?.activeMs !== undefined) this.sink.observe('processing', outcome, jobName, ms - t.activeMs);
        else this.sink.reader('unmatched');
        if (t?.addedMs !== undefined) this.sink.observe('e2e', outcome, jobName, ms - t.addedMs);
        this.sink.count(outcome, jobName);
        this.forget(jobId);
        this.settleWhileActive(jobId);
        return;
      }
      case 'waiting-children': {
        // A flow parent waits for its children; from `active` (moveToWaitingChildren) the attempt ends
        // without an outcome, so it is neither observed nor counted.
        const t = this.track(jobId, ms, f.prev === undefined ? false : undefined);
        t.activeMs = undefined;
        t.eligibleMs = undefined;
        return;
      }
      case 'stalled': {
        // Normally consumed together with its `waiting prev=active`; alone only when that entry was lost.
        const t = this.track(jobId, ms, undefined);
        t.activeMs = undefined;
        t.eligibleMs = ms;
        this.sink.count('stalled', t.jobName);
        return;
      }
      case 'deduplicated': {
        // Named after the job that stays; a debounce with replace removed the old one just before and
        // names the new one, not added yet: the removed job's name is the name of the deduplicated work.
        const t = this.jobs.get(jobId);
        const jobName = t?.jobName ?? removedJustBefore ?? this.unknownName();
        if (t?.activeMs !== undefined && this.whileActive.size < MAX_WHILE_ACTIVE) {
          const w = this.whileActive.get(jobId) ?? { jobName, count: 0, lastId: undefined };
          if (w.lastId !== undefined) this.keptIds.delete(w.lastId);
          w.count += 1;
          w.lastId = f.deduplicatedJobId;
          if (this.whileActive === NO_ENTRIES) [this.whileActive, this.keptIds] = [new Map(), new Map()];
          if (w.lastId !== undefined) this.keptIds.set(w.lastId, jobId);
          this.whileActive.set(jobId, w);
        } else {
          this.sink.count('deduplicated', jobName);
        }
        return;
      }
      case 'removed':
        this.removedName = this.jobs.get(jobId)?.jobName;
        this.forget(jobId);
        this.settleWhileActive(jobId);
        return;
      default:
        return; // progress, retries-exhausted (failed already counts), duplicated (no job created)
    }
  }

  /** The held deduplications of `jobId`'s duplicates once it finished and no kept add was created: all counted. */
  private settleWhileActive(jobId: string): void {
    const w = this.whileActive.get(jobId);
    if (!w) return;
    this.whileActive.delete(jobId);
    if (w.lastId !== undefined) this.keptIds.delete(w.lastId);
    this.countDeduplicated(w.jobName, w.count);
  }

  private deferredOf(addedId: string): { of: string; entry: { jobName: string; count: number } } | undefined {
    const of = this.keptIds.get(addedId);
    const entry = of === undefined ? undefined : this.whileActive.get(of);
    return of === undefined || !entry ? undefined : { of, entry };
  }

  private countDeduplicated(jobName: string, n: number): void {
    for (let i = 0; i < n; i++) this.sink.count('deduplicated', jobName);
  }

  /** `waiting prev=active`: the attempt ended and the job is back in line, after a stall or as a retry. */
  private attemptRequeued(e: StreamEntry, stalled: boolean): void {
    const ms = e.ms;
    const t = this.track(e.fields.jobId as string, ms, true);
    if (stalled) {
      // The crashed attempt's duration is unknown (crash + lock expiry + check delay): count, never observe.
      this.sink.count('stalled', t.jobName);
      t.activeMs = undefined;
    } else {
      // Immediate retry; a manual rate-limit re-queue (RateLimitError) looks the same on the stream.
      this.endAttempt(t, 'retried', ms);
      this.sink.count('retried', t.jobName);
    }
    t.taken = true;
    t.eligibleMs = ms;
  }

  private endAttempt(t: JobTrack, outcome: 'retried', ms: number): void {
    if (t.activeMs !== undefined) this.sink.observe('processing', outcome, t.jobName, ms - t.activeMs);
    else this.sink.reader('unmatched');
    t.activeMs = undefined;
  }

  /** The job's track, created (with `taken`) when unknown; moved to the young end for age eviction. */
  private track(jobId: string, ms: number, taken: boolean | undefined): JobTrack {
    const t = this.jobs.get(jobId) ?? { jobName: this.unknownName(), taken, lastMs: ms };
    t.lastMs = ms;
    this.put(jobId, t);
    return t;
  }

  private put(jobId: string, t: JobTrack): void {
    if (!this.jobs.delete(jobId)) this.budget.used += 1;
    if (this.jobs === NO_ENTRIES) this.jobs = new Map();
    this.jobs.set(jobId, t);
    // The cap is enforced at once; the age limit (hours) only needs a look now and then.
    if (this.budget.used > this.budget.max) this.largestHolder().evictOldest(jobId);
    if ((++this.puts & 1023) === 0) this.evict(t.lastMs);
  }

  /** The machine holding the most jobs (another one on a tie): it gives up its oldest. Runs only at the cap. */
  private largestHolder(): QueueLifecycle {
    let best: QueueLifecycle | undefined;
    for (const h of this.budget.holders ?? []) if (h !== this && h.jobs.size >= (best ?? this).jobs.size) best = h;
    return best ?? this;
  }

  /** Drops the least recently touched job (never `keep`, the one just added) and counts it on this queue. */
  private evictOldest(keep: string): void {
    for (const id of this.jobs.keys()) {
      if (id === keep) continue;
      this.forget(id);
      this.sink.reader('evicted');
      return;
    }
  }

  private forget(jobId: string): void {
    if (this.jobs.delete(jobId)) this.budget.used -= 1;
  }

  /** Map order is last-touch order, and stream time only grows, so the oldest are at the front. */
  private evict(nowMs: number): void {
    for (const [id, t] of this.jobs) {
      if (nowMs - t.lastMs <= this.opts.maxInFlightAgeMs) break;
      this.forget(id);
      this.sink.reader('evicted');
    }
  }

  private label(name: string | undefined): string {
    if (!this.opts.jobNameLabel) return '';
    // A job name is a label value repeated in ~50 series of its queue: a long one folds like one past the cap.
    if (name === undefined || name.length > MAX_JOB_NAME_BYTES || Buffer.byteLength(name) > MAX_JOB_NAME_BYTES) return OTHER_JOB_NAME;
    if (this.names.has(name)) return name;
    if (this.names.size < this.opts.maxJobNames) {
      if (this.names === NO_MEMBERS) this.names = new Set();
      this.names.add(name);
      return name;
    }
    return OTHER_JOB_NAME;
  }

  private unknownName(): string {
    return this.opts.jobNameLabel ? OTHER_JOB_NAME : '';
  }
}
