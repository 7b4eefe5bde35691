// Owns the read pacing's guard against bursts (event-reader.ts readPaced): a busy stream is left out of rounds for up
// to a pace only while what reaches it meanwhile cannot outrun what it retains. Its own rate is known from its last
// reads; a sudden burst is not, so once per round the guard reads Redis's XADD count (INFO commandstats, every XADD,
// BullMQ's scripts' included) and adds up how far it grew beyond the rates of every stream read lately: that excess,
// summed since a stream's read, may all be in that stream. Positive and negative errors of the rates cancel in the
// sum; XADDs to streams nobody follows (another prefix, another application) only make pacing rarer. A stream read
// before the count's base was (re)taken is not vouched for. When INFO cannot be read (an ACL without +info), no
// stream is paced, as before the guard.

/** What the guard needs of a followed stream. */
export interface PacedStream {
  /** Local clock of its last read that returned entries (0: none). */
  readAt: number;
  /** Entries per ms between its last two reads (Infinity: unknown). */
  rate: number;
}

/**
 * Checks at most this often, as often as the reader's rounds start by default (an INFO commandstats costs Redis
 * 50-100 µs). A burst has to fill the three quarters of a stream that readPaced keeps free within about this long
 * (plus a round) to take entries unread: 1,500 entries a second into a stream keeping 1,000, 15,000 into one keeping
 * BullMQ's default 10,000; a stream read every round fares no better against a burst of a whole stream in a round.
 */
const CHECK_MS = 500;

export class BurstGuard {
  /** XADDs beyond the known rates, summed over the checks since the base (may go below 0 by the rates' errors). */
  excess = 0;
  /** Local clock at which the current base was taken: only reads after it are vouched for (-1: no base). */
  baseAt = -1;
  usable = true;
  private base = 0;
  private at = 0;
  private infoCalls = -1;

  constructor(private readonly commandStats: () => Promise<string>) {}

  /**
   * Before a round, at most every CHECK_MS (what comes in between is in the next check's growth). Nothing is read (no
   * INFO) while no stream has a known rate, since then none is paced.
   */
  async check(streams: Iterable<PacedStream>, now: number): Promise<void> {
    if (this.baseAt >= 0 && now - this.at < CHECK_MS) return;
    let perMs = 0;
    let any = false;
    for (const s of streams) {
      if (s.readAt > 0 && Number.isFinite(s.rate)) {
        perMs += s.rate;
        any = true;
      }
    }
    if (!any || !this.usable) {
      this.baseAt = -1;
      return;
    }
    let calls: number;
    let reset: boolean;
    try {
      const stats = await this.commandStats();
      calls = Number(/^cmdstat_xadd:calls=(\d+)/m.exec(stats)?.[1] ?? 0);
      // Each check adds one INFO: a count that did not grow is a reset (CONFIG RESETSTAT, a restart).
      const infoCalls = Number(/^cmdstat_info:calls=(\d+)/m.exec(stats)?.[1] ?? 0);
      reset = infoCalls <= this.infoCalls || calls < this.base;
      this.infoCalls = infoCalls;
    } catch (err) {
      if (/NOPERM|unknown command/i.test((err as Error).message)) this.usable = false;
      this.baseAt = -1;
      return;
    }
    if (this.baseAt < 0 || reset) {
      this.baseAt = now;
    } else {
      this.excess += calls - this.base - perMs * Math.max(0, now - this.at);
    }
    this.base = calls;
    this.at = now;
  }

  /** What may have reached a stream read at `readAt` (with excess `excessAtRead` then) beyond its rate; Infinity: unknown. */
  since(readAt: number, excessAtRead: number): number {
    if (!this.usable || this.baseAt < 0 || readAt < this.baseAt) return Infinity;
    return Math.max(0, this.excess - excessAtRead);
  }
}
