// Long synchronous passes over every queue (rendering 1,000 queues' series, parsing their accounting, pushing
// their history) run in slices of a few milliseconds: a scrape or health check that arrives meanwhile waits for
// one slice, not for the whole pass.

/** Reads the clock once every this many calls of due(): a unit of work is a queue, well under a millisecond. */
const CHECK_EVERY = 32;

export class Slicer {
  private calls = 0;
  private sliceStart = performance.now();

  constructor(private readonly sliceMs = 4) {}

  /** Call once per unit of work; true when this slice has used its time and the caller should `await yield()`. */
  due(): boolean {
    this.calls += 1;
    return this.calls % CHECK_EVERY === 0 && performance.now() - this.sliceStart >= this.sliceMs;
  }

  /** Lets pending I/O callbacks run, then starts a new slice. */
  async yield(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.sliceStart = performance.now();
  }
}
