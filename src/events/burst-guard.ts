// Owns the read pacing's guard against bursts (event-reader.ts readPaced): a busy stream is left out of rounds for up
// to a pace only while what reaches it meanwhile cannot outrun what it retains. Its own rate is known from its last
// reads; a sudden burst is not, so once per round the guard reads Redis's XADD count (LATENCY HISTOGRAM XADD, or INFO
// commandstats where that cannot be used: XaddCounter; every XADD, BullMQ's scripts' included) and adds up how far it grew beyond the rates of every stream read lately: that excess,
// summed since a stream's read, may all be in that stream. Positive and negative errors of the rates cancel in the
// sum; XADDs to streams nobody follows (another prefix, another application) only make pacing rarer. A stream read
// before the count's base was (re)taken is not vouched for. When INFO cannot be read (an ACL without +info), no
// stream is paced, as before the guard.

/** Redis's count of XADD calls, and of the command that read it (it grows by one at each read: else a reset). */
export interface XaddCount {
  xadd: number;
  reads: number;
}

/** What the guard's counter needs of the connection (ioredis, standalone). */
export interface CounterClient {
  info(section: string): Promise<string>;
  call(command: string, ...args: string[]): Promise<unknown>;
  multi(): { call(command: string, ...args: string[]): unknown; info(section: string): unknown; exec(): Promise<Array<[Error | null, unknown]> | null> };
}

/**
 * Every this often, the histogram's count is checked against INFO commandstats in one MULTI (and at the read after one
 * whose own count did not grow): latency tracking switched off and on again between two reads (XADDs the histogram
 * missed) is seen by then, and the counter falls back to INFO for good. Once a minute: at rest the idle gate's checks
 * (1 to 5 s apart) are one LATENCY HISTOGRAM each, an INFO commandstats only at this check.
 */
const CROSS_CHECK_MS = 60_000;

/**
 * Reads Redis's XADD count cheaply: LATENCY HISTOGRAM XADD (Redis 7: one command's calls, about a tenth of the reply
 * of INFO commandstats, which lists every command Redis ran) while latency tracking is on, else INFO commandstats.
 * Both count the same calls (Redis updates the count and the histogram together, scripts' inner calls included),
 * but the histogram only while `latency-tracking` is on: switched off, its own count (LATENCY|HISTOGRAM) stops
 * growing, which the guard and the idle gate take as a reset from the second check after the switch (a reply counts
 * the calls before it, the one before the switch included), so XADDs in those two checks' time (up to a second with
 * traffic, 10 s at rest) may go unseen: the one way this counts less than INFO, and only around a CONFIG SET
 * latency-tracking no (switched on again before the second check: until the next cross-check). That read makes the
 * next one a cross-check. A cross-check every CROSS_CHECK_MS compares the two counts atomically and whether the histogram counts at all (its own count, read
 * twice); a difference that moved, tracking off, or an error (Redis 6, an ACL without +latency) switches to INFO
 * commandstats for good. The first read is such a cross-check.
 */
export class XaddCounter {
  private histogram = true;
  private checkedAt = -Infinity;
  /** cmdstat_xadd minus the histogram's xadd calls at the last cross-check (-1: none yet). */
  private offset = -1;
  /** The histogram's own count in the last reply (-1: none yet). */
  private reads = -1;

  /** `client`: the connection, asked at each read (the reader opens it after constructing this). */
  constructor(
    private readonly connection: () => CounterClient,
    private readonly now: () => number = Date.now,
  ) {}

  private get client(): CounterClient {
    return this.connection();
  }

  /** Whether the counts come from LATENCY HISTOGRAM (for tests and the log). */
  get cheap(): boolean {
    return this.histogram;
  }

  async read(): Promise<XaddCount> {
    if (this.histogram) {
      try {
        const at = this.now();
        if (at - this.checkedAt >= CROSS_CHECK_MS) {
          this.checkedAt = at;
          // Atomically: the histogram twice (its own count grows by one in between only while tracking is on) and INFO.
          const tx = this.client.multi();
          tx.call('LATENCY', 'HISTOGRAM', 'xadd', 'latency|histogram');
          tx.call('LATENCY', 'HISTOGRAM', 'latency|histogram');
          tx.info('commandstats');
          const replies = (await tx.exec()) ?? [];
          const failed = replies.find(([e]) => e);
          if (replies.length !== 3 || failed) throw failed?.[0] ?? new Error('MULTI failed');
          const counts = histogramCalls(replies[0]?.[1]);
          const again = histogramCalls(replies[1]?.[1]);
          const offset = infoCount(String(replies[2]?.[1])).xadd - counts.xadd;
          if (again.reads !== counts.reads + 1 || (this.offset >= 0 && offset !== this.offset)) throw new Error('latency tracking off');
          this.offset = offset;
          this.reads = again.reads;
          return counts;
        }
        const counts = histogramCalls(await this.client.call('LATENCY', 'HISTOGRAM', 'xadd', 'latency|histogram'));
        // Its own count did not grow: tracking off, or the stats reset (CONFIG RESETSTAT, a restart). A reset for the
        // callers; the next read tells which.
        if (counts.reads <= this.reads) this.checkedAt = -Infinity;
        this.reads = counts.reads;
        return counts;
      } catch {
        // Without +latency INFO may still be allowed: the guard finds out. Its own count restarts with INFO's, so this
        // read is a reset (nothing read before it is vouched for).
        this.histogram = false;
        return { xadd: infoCount(await this.client.info('commandstats')).xadd, reads: -1 };
      }
    }
    return infoCount(await this.client.info('commandstats'));
  }
}

/** calls of `xadd` and `latency|histogram` in a LATENCY HISTOGRAM reply (flat name/map pairs; RESP2; absent: 0). */
function histogramCalls(reply: unknown): XaddCount {
  let xadd = 0;
  let reads = 0;
  if (!Array.isArray(reply)) throw new Error('unexpected LATENCY HISTOGRAM reply');
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const name = String(reply[i]).toLowerCase();
    const body = reply[i + 1];
    if (!Array.isArray(body)) continue;
    const k = body.findIndex((x) => String(x) === 'calls');
    const calls = k >= 0 ? Number(body[k + 1]) : NaN;
    if (!Number.isFinite(calls)) continue;
    if (name === 'xadd') xadd = calls;
    else if (name === 'latency|histogram') reads = calls;
  }
  return { xadd, reads };
}

/** XADD's and INFO's calls in INFO commandstats. */
function infoCount(stats: string): XaddCount {
  return {
    xadd: Number(/^cmdstat_xadd:calls=(\d+)/m.exec(stats)?.[1] ?? 0),
    reads: Number(/^cmdstat_info:calls=(\d+)/m.exec(stats)?.[1] ?? 0),
  };
}

/** What the guard needs of a followed stream. */
export interface PacedStream {
  /** Local clock of its last read that returned entries (0: none). */
  readAt: number;
  /** Entries per ms between its last two reads (Infinity: unknown). */
  rate: number;
}

/**
 * Checks at most this often, as often as the reader's rounds start by default (an INFO commandstats costs Redis
 * 50-150 µs with traffic; LATENCY HISTOGRAM XADD a fraction of that). A burst has to fill the three quarters of a stream that readPaced keeps free within about this long
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
  private reads = -1;

  constructor(private readonly count: () => Promise<XaddCount>) {}

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
      const c = await this.count();
      calls = c.xadd;
      // Each check adds one read: a count that did not grow is a reset (CONFIG RESETSTAT, a restart, latency
      // tracking switched off, the counter switching to INFO).
      reset = c.reads <= this.reads || calls < this.base;
      this.reads = c.reads;
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
