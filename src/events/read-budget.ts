// Owns how much one read may ask for. XREAD/XREVRANGE bound entries, not bytes, and a `completed` entry
// carries the job's whole return value: 1,000 entries of 5 MB would be a 5 GB reply, and so would one entry
// from each of 1,000 streams. The budget is per read: streams × entries per stream × the largest entry seen
// stays under maxBytes. Both start at 1 and double with every read, so a reader that has seen nothing yet
// (start-up, catch-up, a new term) reads one entry of one stream first and cannot be surprised by a backlog of
// huge entries. An entry larger than any seen can still make a read overshoot: the standalone reader then
// drops the reply once it passes maxBytes (RawConnection's maxReplyBytes) and starts again from 1 × 1.

export interface ReadBudgetOptions {
  /** Bytes one read should stay under (a single entry larger than this is still read, alone). */
  maxBytes: number;
  /** Entries per stream per read when entries are small. */
  maxCount: number;
}

/** Reads after which the largest entry seen is halved, so one old huge entry does not slow reads for ever. */
const DECAY_READS = 64;

export interface ReadPlan {
  /** Streams one read covers. */
  streams: number;
  /** Entries per stream. */
  count: number;
}

export class ReadBudget {
  private current = 1;
  private width = 1;
  private largest = 0;
  private readsSinceDecay = 0;

  constructor(private readonly opts: ReadBudgetOptions) {}

  /** Streams per read and entries per stream for a read over (up to) `streams` streams. */
  plan(streams: number): ReadPlan {
    const { maxBytes, maxCount } = this.opts;
    const fitEntries = this.largest === 0 ? Number.POSITIVE_INFINITY : Math.floor(maxBytes / this.largest);
    const s = Math.max(1, Math.min(streams, this.width, fitEntries));
    const c = Math.max(1, Math.min(this.current, maxCount, Math.floor(fitEntries / s)));
    return { streams: s, count: c };
  }

  /** Bytes past which a read's reply is surely over budget (only a single entry may be larger). */
  get maxBytes(): number {
    return this.opts.maxBytes;
  }

  /** Records the size of the largest entry one stream returned (its field names and values, in bytes). */
  observe(largest: number): void {
    if (largest > this.largest) this.largest = largest;
  }

  /** One read is done: the next may ask for more. */
  grow(): void {
    if (++this.readsSinceDecay >= DECAY_READS) {
      this.readsSinceDecay = 0;
      this.largest = Math.floor(this.largest / 2);
    }
    this.current = Math.min(this.current * 2, this.opts.maxCount);
    this.width = Math.min(this.width * 2, 1 << 20);
  }

  /** Back to one entry of one stream: nothing is known about what the next reads hold. */
  reset(): void {
    this.current = 1;
    this.width = 1;
    this.largest = 0;
    this.readsSinceDecay = 0;
  }
}
