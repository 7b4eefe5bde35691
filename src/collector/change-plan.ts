// Owns which queues a collection reads from the backend when the event reader follows them (domain/queue-changes.ts).
// A followed queue whose stream did not move since its last look still holds what that look read: its counts are
// reused, and its ages and overdue-ness follow from the stored timestamps and the clock. Read again: the queues
// whose events moved; those not followed (events off, another replica's shard, before the reader loaded them);
// those never read or unreadable; those whose look goes out of date with time alone (a delayed job falling due, a
// live rate limiter); and a slow sweep through all the others, for what emits no event (a lock expiring, a key
// edited by hand, a drain or obliterate): each queue at least once per sweep period, a share of them per pass.
import type { QueueLook, QueueReading } from '../domain/backend.js';
import { queueId, type QueueRef } from '../domain/queue-ref.js';
import type { QueueChanges } from '../domain/queue-changes.js';

export interface ChangePlanOptions {
  changes: QueueChanges;
  /** Every followed queue is read again at least this often (ms). */
  sweepMs: number;
  /** Local clock (ms); tests may drive it. */
  now?: () => number;
}

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
}

export class ChangePlan {
  private kept = new Map<string, Kept>();
  private cursor = 0;
  private lastPlanAt: number | undefined;
  /** Sweep quota carried between passes (a fraction of a queue per pass adds up). */
  private credit = 0;
  private readonly now: () => number;
  /** Queues read per reason in the last pass (for the log and tests). */
  lastCounts = { changed: 0, swept: 0, other: 0, kept: 0 };

  constructor(private readonly o: ChangePlanOptions) {
    this.now = o.now ?? Date.now;
  }

  plan(refs: readonly QueueRef[]): Plan {
    const now = this.now();
    const changed = this.o.changes.take('state');
    // The sweep: a share of the queues proportional to the time since the last pass, in a fixed rotation, so each
    // is read once per sweep period however often passes run, and the reads are spread over the period.
    const elapsed = this.lastPlanAt === undefined ? 0 : now - this.lastPlanAt;
    this.lastPlanAt = now;
    this.credit = Math.min(refs.length, this.credit + (refs.length * elapsed) / this.o.sweepMs);
    const quota = Math.floor(this.credit);
    this.credit -= quota;
    const swept = new Set<number>();
    if (refs.length > 0) {
      this.cursor %= refs.length;
      for (let k = 0; k < quota; k += 1) swept.add((this.cursor + k) % refs.length);
      this.cursor = (this.cursor + quota) % refs.length;
    }
    const read: QueueRef[] = [];
    const kept: QueueLook[] = [];
    const counts = { changed: 0, swept: 0, other: 0, kept: 0 };
    const live = new Set<string>();
    refs.forEach((ref, i) => {
      const id = queueId(ref);
      live.add(id);
      const k = this.kept.get(id);
      if (changed.has(id)) counts.changed += 1;
      else if (swept.has(i)) counts.swept += 1;
      else if (!k || !this.o.changes.isFollowed(id) || now - k.readAt >= 2 * this.o.sweepMs || outOfDate(k, now)) counts.other += 1;
      else {
        counts.kept += 1;
        kept.push(aged(k, now));
        return;
      }
      read.push(ref);
    });
    // Forget queues no longer listed.
    if (this.kept.size > live.size) for (const id of this.kept.keys()) if (!live.has(id)) this.kept.delete(id);
    this.lastCounts = counts;
    return { read, kept };
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
