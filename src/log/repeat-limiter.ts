// Owns rate-limiting of repeated log lines: a failure that persists (Redis refusing every pass, a connection error
// on every reconnect, two alternating errors) is logged once per interval per distinct message, with how many times
// it repeated in between, instead of several lines a second forever. Bounded: at most `maxKeys` messages tracked.

export class RepeatLimiter {
  private readonly seen = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly intervalMs = 60_000,
    private readonly maxKeys = 100,
  ) {}

  /** Whether to log `key` now; when it is, `repeated` is how many identical lines were held back since the last one. */
  check(key: string, now = Date.now()): { log: true; repeated: number } | { log: false } {
    const entry = this.seen.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed += 1;
      return { log: false };
    }
    this.seen.delete(key);
    this.seen.set(key, { at: now, suppressed: 0 });
    if (this.seen.size > this.maxKeys) this.seen.delete(this.seen.keys().next().value as string);
    return { log: true, repeated: entry?.suppressed ?? 0 };
  }

  /** Forget everything: the condition ended (Redis answered again), so the next failure is news. */
  reset(): void {
    this.seen.clear();
  }
}
