// Owns the decision to skip an idle polling round of the event reader (standalone Redis, several XREAD groups).
// Redis counts every XADD it runs, BullMQ's scripts' included. When the count has not moved since just before a round
// that found every stream at its end, no stream can hold an unread entry, and the next round is skipped: one small
// command (whatever the number of queues) instead of an XREAD of every stream (about 0.3-1 µs per stream). The count
// is the burst guard's (burst-guard.ts XaddCounter, one counter for both): LATENCY HISTOGRAM XADD while Redis's latency
// tracking is on, cross-checked against INFO commandstats once a minute, else INFO commandstats. A reset of the counters
// (a restart, CONFIG RESETSTAT, the counter switching to INFO) followed by as many XADDs as before would land on the
// same number: the reading command's own count in the same reply tells, since each check adds one to it, so a count
// that did not grow by at least that is a reset, and that round is read. A real round is still read at least every
// `forceMs`. When neither count can be read (an ACL without +info), every round is read, as without the gate. As for
// the guard, a `CONFIG SET latency-tracking no` can hide the XADDs between it and the next check (the histogram stops
// counting, its own count with it, seen as a reset one check later): that round is read one check (at most 5 s) late;
// switched off and on again between two checks, until the counter's cross-check (a minute) or `forceMs`.
import type { XaddCount } from './burst-guard.js';

export class IdleGate {
  /** XADD calls counted just before the round that followed the last check. */
  private base: number | undefined;
  /** The reading command's calls in the last check's reply: the next reply holds at least one more (that check's own). */
  private reads = -1;
  private readAt = 0;
  private usable = true;

  constructor(
    private readonly count: () => Promise<XaddCount>,
    private readonly forceMs: number,
  ) {}

  /**
   * Whether the round due now can be skipped. When not, the caller reads a whole round next, and the count taken
   * here (before it) becomes the base that the following check compares with.
   */
  async skip(): Promise<boolean> {
    if (!this.usable) return false;
    let calls: number;
    let reset: boolean;
    try {
      const c = await this.count();
      calls = c.xadd;
      reset = c.reads <= this.reads;
      this.reads = c.reads;
    } catch (err) {
      // Not allowed (an ACL without +info, a renamed command): for good. Anything else: read this round.
      if (/NOPERM|unknown command/i.test((err as Error).message)) this.usable = false;
      return false;
    }
    const now = Date.now();
    if (!reset && this.base === calls && now - this.readAt < this.forceMs) return true;
    this.base = calls;
    this.readAt = now;
    return false;
  }

  /** Entries were read, or the followed streams changed: the base no longer stands for what was read. */
  moved(): void {
    this.base = undefined;
  }
}
