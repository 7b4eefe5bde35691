// Owns the decision to skip an idle polling round of the event reader (standalone Redis, several XREAD groups).
// Redis counts every XADD it runs, BullMQ's scripts' included (INFO commandstats). When the count has not moved
// since just before a round that found every stream at its end, no stream can hold an unread entry, and the next
// round is skipped: one INFO (about 20 µs of Redis time, whatever the number of queues) instead of an XREAD of
// every stream (about 0.3-1 µs per stream). A real round is still read at least every `forceMs`, which bounds
// what a reset counter (a restart, CONFIG RESETSTAT) that lands on the same number could hide. When INFO cannot be
// read (an ACL without +info), every round is read, as without the gate.

/** What the last check decided: skipped, read for the first time since data moved, read because the count moved. */
type Check = 'none' | 'skip' | 'first' | 'moved' | 'forced' | 'off';

export class IdleGate {
  /** XADD calls counted just before the round that followed the last check. */
  private base: string | undefined;
  private last: Check = 'none';
  private readAt = 0;
  private usable = true;

  constructor(
    private readonly commandStats: () => Promise<string>,
    private readonly forceMs: number,
  ) {}

  /**
   * Whether the round due now can be skipped. When not, the caller reads a whole round next, and the count taken
   * here (before it) becomes the base that the following check compares with.
   */
  async skip(): Promise<boolean> {
    if (!this.usable) {
      this.last = 'off';
      return false;
    }
    let calls: string;
    try {
      calls = /^cmdstat_xadd:calls=(\d+)/m.exec(await this.commandStats())?.[1] ?? '0';
    } catch {
      this.usable = false;
      this.last = 'off';
      return false;
    }
    const now = Date.now();
    if (this.base === calls && now - this.readAt < this.forceMs) {
      this.last = 'skip';
      return true;
    }
    this.last = this.base === undefined ? 'first' : this.base === calls ? 'forced' : 'moved';
    this.base = calls;
    this.readAt = now;
    return false;
  }

  /**
   * Whether the idle round just finished counts towards the reader's back-off: read without the gate, or read
   * because the count moved and found nothing (XADDs to streams the reader does not follow).
   */
  counts(): boolean {
    return this.last === 'off' || this.last === 'moved';
  }

  /** Entries were read, or the followed streams changed: the base no longer stands for what was read. */
  moved(): void {
    this.base = undefined;
    this.last = 'none';
  }
}
