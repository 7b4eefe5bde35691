// Owns which queues a collection reads from the backend when the event reader follows them (domain/queue-changes.ts).
// A followed queue whose stream did not move since its last look still holds what that look read: its counts are
// reused, and its ages and overdue-ness follow from the stored timestamps and the clock. Read again: the queues
// whose events moved; those not followed (events off, another replica's shard, before the reader loaded them);
// those never read or unreadable; those whose look goes out of date with time alone (a delayed job falling due, a
// live rate limiter); and a slow sweep through all the others, for what emits no event (a lock expiring, a key
// edited by hand, a drain or obliterate): each queue at least once per sweep period, a share of them per pass.
// The sweep is paced by risk: a queue whose last look held an active job whose lock can expire before the idle
// sweep comes round (its worker dying now: every lock a live worker renews) is read once per sweep period; one
// with nothing that can change without an event (no such lock; a delayed job falling due and a live limiter are
// handled above) only once per idle sweep period, so at rest it costs Redis a tenth as much. What such a queue can miss for that long: writes that emit no event (raw Redis commands, a
// drain or clean, an obliterate). A queue whose events keep moving is read at most once per busy period: 1 s, or
// with the sidecar's demand-pace.ts as often as its data is asked for (1 s to 7.5 s by default); its changes reach
// /metrics within about that, and a fleet of busy queues is not re-read at every prompt collection. Where a sweep
// reads a queue as any read does (Redis), a queue read lately is not swept at its turn but sweepMs after that read
// unless read again before (sweepLikeAnyRead): busy queues, re-read anyway, cost the sweep nothing.
import type { QueueLook, QueueReading } from '../domain/backend.js';
import { queueId, type QueueRef } from '../domain/queue-ref.js';
import type { QueueChanges } from '../domain/queue-changes.js';

export interface ChangePlanOptions {
  changes: QueueChanges;
  /** A followed queue with an active job (a lock that can expire unseen) is read again at least this often (ms). */
  sweepMs: number;
  /**
   * A followed queue with no active job is read again at least this often (ms); at least sweepMs. Unset: sweepMs.
   */
  idleSweepMs?: number;
  /**
   * A queue whose events moved is read again at most this often (ms): a queue busy all the time is read about once
   * per this period however often prompt collections run; one quiet until now is read at the next pass. What moved
   * in between stays marked, so it is read as soon as the period is up. Default BUSY_REREAD_MS. A function is asked
   * at each pass (demand-pace.ts: the period follows how often the data is asked for).
   */
  busyRereadMs?: number | (() => number);
  /**
   * The backend's sweep reads a queue no differently from any other read (Redis: the same script; PostgreSQL
   * recounts what a swept queue holds, so not there): a queue at risk read less than sweepMs before its turn in the
   * sweep is not read for it, but once sweepMs after that read if nothing reads it before; still at least once per
   * sweepMs. Spares the sweep's reads of busy queues, which are re-read anyway.
   */
  sweepLikeAnyRead?: boolean;
  /** Local clock (ms); tests may drive it. */
  now?: () => number;
}

/** See ChangePlanOptions.busyRereadMs: a prompt collection runs at most every PROMPT_GAP_MS, so twice as often. */
export const BUSY_REREAD_MS = 1000;

interface Kept {
  look: QueueLook;
  /** Local clock when it was read. */
  readAt: number;
}

export interface Plan {
  /** To read from the backend in this pass. */
  read: QueueRef[];
  /** Kept looks aged to now, for the queues not read. */
  kept: QueueLook[];
  /** The queues of `read` (queueId) that only the sweep reads now: a backend may look further for what emits no event. */
  swept: Set<string>;
}

/**
 * A fixed rotation through the queue list that yields a share of it proportional to the time since the last pass,
 * so each position comes up once per period however often passes run, and the picks are spread over the period.
 */
class Rotation {
  private cursor = 0;
  /** Quota carried between passes (a fraction of a queue per pass adds up). */
  private credit = 0;

  constructor(private readonly periodMs: number) {}

  take(size: number, elapsedMs: number): Set<number> {
    this.credit = Math.min(size, this.credit + (size * elapsedMs) / this.periodMs);
    const quota = Math.floor(this.credit);
    this.credit -= quota;
    const picked = new Set<number>();
    if (size === 0) return picked;
    this.cursor %= size;
    for (let k = 0; k < quota; k += 1) picked.add((this.cursor + k) % size);
    this.cursor = (this.cursor + quota) % size;
    return picked;
  }
}

export class ChangePlan {
  private kept = new Map<string, Kept>();
  private lastPlanAt: number | undefined;
  /** The sweep of the queues at risk (an active job), and the slow one of every queue. */
  private readonly riskRotation: Rotation;
  private readonly idleRotation: Rotation;
  private readonly idleSweepMs: number;
  private readonly now: () => number;
  /** Queues read per reason in the last pass (for the log and tests); deferred: moved, but read too recently. */
  lastCounts = { changed: 0, swept: 0, other: 0, kept: 0, deferred: 0 };
  private readonly busyRereadMs: () => number;
  /** Queues at risk whose turn in the sweep came while their last read was recent (sweepLikeAnyRead). */
  private readonly sweepOwed = new Set<string>();

  constructor(private readonly o: ChangePlanOptions) {
    this.now = o.now ?? Date.now;
    this.idleSweepMs = Math.max(o.sweepMs, o.idleSweepMs ?? o.sweepMs);
    this.riskRotation = new Rotation(o.sweepMs);
    this.idleRotation = new Rotation(this.idleSweepMs);
    const busy = o.busyRereadMs ?? BUSY_REREAD_MS;
    this.busyRereadMs = typeof busy === 'number' ? () => busy : busy;
  }

  plan(refs: readonly QueueRef[]): Plan {
    const now = this.now();
    const changed = this.o.changes.take('state');
    const elapsed = this.lastPlanAt === undefined ? 0 : now - this.lastPlanAt;
    this.lastPlanAt = now;
    // Two rotations: every queue comes up once per sweep period in the first, read only when it is at risk, and
    // once per idle sweep period in the second, read whatever it holds.
    const risky = this.riskRotation.take(refs.length, elapsed);
    const slow = this.idleRotation.take(refs.length, elapsed);
    const read: QueueRef[] = [];
    const kept: QueueLook[] = [];
    const counts = { changed: 0, swept: 0, other: 0, kept: 0, deferred: 0 };
    const swept = new Set<string>();
    const live = new Set<string>();
    const deferred: QueueRef[] = [];
    const busyMs = changed.size > 0 ? this.busyRereadMs() : 0;
    refs.forEach((ref, i) => {
      const id = queueId(ref);
      live.add(id);
      const k = this.kept.get(id);
      if (changed.has(id) && k !== undefined && now - k.readAt < busyMs && this.o.changes.isFollowed(id) && !outOfDate(k, now)) {
        // Read less than a period ago: kept for now, and marked again, so the pass after the period reads it.
        counts.deferred += 1;
        deferred.push(ref);
        kept.push(aged(k, now));
        return;
      }
      const owed = this.sweepOwed.has(id);
      if (risky.has(i) && k !== undefined && !owed && this.o.sweepLikeAnyRead && now - k.readAt < this.o.sweepMs && this.atRisk(k, now)) {
        // Read lately for another reason: owed a read sweepMs after that one, unless something reads it before.
        this.sweepOwed.add(id);
      }
      if (changed.has(id)) counts.changed += 1;
      else if (
        slow.has(i) ||
        (risky.has(i) && k !== undefined && !this.sweepOwed.has(id) && this.atRisk(k, now)) ||
        (k !== undefined && this.sweepOwed.has(id) && now - k.readAt >= this.o.sweepMs)
      ) {
        counts.swept += 1;
        swept.add(id);
      } else if (!k || !this.o.changes.isFollowed(id) || now - k.readAt >= 2 * this.sweepOf(k, now) || outOfDate(k, now)) counts.other += 1;
      else {
        counts.kept += 1;
        kept.push(aged(k, now));
        return;
      }
      read.push(ref);
      this.sweepOwed.delete(id);
    });
    // Forget queues no longer listed.
    if (this.kept.size > live.size) for (const id of this.kept.keys()) if (!live.has(id)) this.kept.delete(id);
    if (this.sweepOwed.size > 0) for (const id of this.sweepOwed) if (!live.has(id)) this.sweepOwed.delete(id);
    this.lastCounts = counts;
    // Marked again after the plan is made: the mark starts the next prompt collection (collectOnChange).
    if (deferred.length > 0) this.o.changes.mark(deferred, ['state']);
    return { read, kept, swept };
  }

  /**
   * A look just read, with the orphaned active jobs of the pages read after it added in: kept for later passes.
   * `undefined` reading (unreadable, or the queue gone): nothing kept, so it is read again.
   */
  keep(look: QueueLook, readAt = this.now()): void {
    const id = queueId(look.ref);
    if (!look.reading || look.reading.metaExists === 0) {
      this.kept.delete(id);
      return;
    }
    this.kept.set(id, { look, readAt });
  }

  /** The sweep period of a kept look: the short one while it may change with no event. */
  private sweepOf(k: Kept, now: number): number {
    return this.atRisk(k, now) ? this.o.sweepMs : this.idleSweepMs;
  }

  /**
   * An active job's lock can expire (an orphan, with no event) before the idle sweep would read the queue again
   * (at the latest twice its period after this look): a lock a live worker keeps renewing always is.
   */
  private atRisk(k: Kept, now: number): boolean {
    const f = k.look.reading as QueueReading;
    return f.active > 0 && f.lockExpiresMs >= 0 && f.lockExpiresMs <= backendNow(k, now) + 2 * this.idleSweepMs;
  }

  /** Drops every kept look (the next pass reads every queue). */
  clear(): void {
    this.kept.clear();
  }
}

/** The look tells nothing for now: a delayed job fell due since, or a rate limiter was live (its window ends unseen). */
function outOfDate(k: Kept, now: number): boolean {
  const f = k.look.reading as QueueReading;
  if (f.limiterPttl > 0) return true;
  return f.nextDueMs >= 0 && backendNow(k, now) > f.nextDueMs;
}

/** The backend's clock now, from its clock at the look and the local time elapsed since. */
function backendNow(k: Kept, now: number): number {
  return k.look.nowMs + Math.max(0, now - k.readAt);
}

function aged(k: Kept, now: number): QueueLook {
  return { ref: k.look.ref, nowMs: backendNow(k, now), reading: k.look.reading };
}

/** Least time between two collections started by changes: marks arriving meanwhile are batched into the next. */
export const PROMPT_GAP_MS = 500;
/** A first change waits this long for the changes that come with it (one job's events arrive within ms). */
const PROMPT_BATCH_MS = 50;

/**
 * Starts `collect` soon after queues change, so a change is on /metrics within about a second instead of a whole
 * collect interval, and batches the changes of a busy fleet: one such collection at a time, at most one per
 * `gapMs`, and the marks that arrive while one runs start a single next one. Returns the function that stops it.
 */
export function collectOnChange(onChange: (listener: () => void) => () => void, collect: () => Promise<void>, gapMs = PROMPT_GAP_MS): () => void {
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let pending = false;
  let stopped = false;
  let lastAt = 0;
  const schedule = (): void => {
    if (stopped || timer) return;
    if (running) {
      pending = true;
      return;
    }
    timer = setTimeout(fire, Math.max(PROMPT_BATCH_MS, lastAt + gapMs - Date.now()));
    timer.unref();
  };
  const fire = (): void => {
    timer = undefined;
    running = true;
    lastAt = Date.now();
    void collect()
      .catch(() => undefined)
      .finally(() => {
        running = false;
        if (pending) {
          pending = false;
          schedule();
        }
      });
  };
  const off = onChange(schedule);
  return () => {
    stopped = true;
    off();
    clearTimeout(timer);
  };
}
