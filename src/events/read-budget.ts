// Owns how many stream entries one read may ask for. XREAD/XREVRANGE bound entries, not bytes, and a
// `completed` entry carries the job's whole return value: 1,000 entries of 5 MB would be a 5 GB reply. The
// count is sized from the largest entry seen lately so that a read stays near a byte budget, and it starts
// at 1 and doubles, so a reader that has seen nothing yet (start-up, catch-up, a new term) cannot be
// surprised by a backlog of huge entries.

export interface ReadBudgetOptions {
  /** Bytes one read should stay under (a single entry larger than this is still read, alone). */
  maxBytes: number;
  /** Entries per stream per read when entries are small. */
  maxCount: number;
}

/** Reads after which the largest entry seen is halved, so one old huge entry does not slow reads for ever. */
const DECAY_READS = 64;

export class ReadBudget {
  private current = 1;
  private largest = 0;
  private readsSinceDecay = 0;

  constructor(private readonly opts: ReadBudgetOptions) {}

  /** Entries per stream to ask for, when `streams` streams are read in the same call. */
  count(streams = 1): number {
    const fit = this.largest === 0 ? this.opts.maxCount : Math.floor(this.opts.maxBytes / (this.largest * Math.max(streams, 1)));
    return Math.max(1, Math.min(this.current, fit, this.opts.maxCount));
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
  }

  /** Back to a count of 1: nothing is known about what the next reads hold. */
  reset(): void {
    this.current = 1;
    this.largest = 0;
    this.readsSinceDecay = 0;
  }
}
