// Owns brute-force throttling of the admin token: failed authentication attempts per client in a sliding window.
// A client past the limit is refused (429) until its oldest counted failure leaves the window, whatever it sends.
// Hand-written rather than @fastify/rate-limit: that counts every request, and what must be counted here is failures
// only (an operator's own requests must never use up the allowance). Bounded: at most `maxClients` clients tracked.

export interface ThrottleOptions {
  /** Failures allowed per window before the client is refused (default 20). */
  maxFailures?: number;
  /** Default 60 s. */
  windowMs?: number;
  /** Clients remembered at once; the least recently failing are forgotten first (default 10,000). */
  maxClients?: number;
}

export class AuthThrottle {
  private readonly failures = new Map<string, number[]>();
  /** Clients whose current block has been logged, with when it ends. */
  private readonly announced = new Map<string, number>();
  readonly maxFailures: number;
  readonly windowMs: number;
  private readonly maxClients: number;

  constructor(opts: ThrottleOptions = {}) {
    this.maxFailures = opts.maxFailures ?? 20;
    this.windowMs = opts.windowMs ?? 60_000;
    this.maxClients = opts.maxClients ?? 10_000;
  }

  /** Milliseconds until `client` may try again; 0 when it may now. */
  blockedFor(client: string, now: number): number {
    const recent = this.recent(client, now);
    return recent.length < this.maxFailures ? 0 : recent[0]! + this.windowMs - now;
  }

  /** Counts a failed attempt. */
  fail(client: string, now: number): void {
    const recent = this.recent(client, now);
    recent.push(now);
    if (recent.length > this.maxFailures) recent.shift();
    // Re-inserted, so the map's order is least recently failing first.
    this.failures.delete(client);
    this.failures.set(client, recent);
    if (this.failures.size > this.maxClients) {
      const oldest = this.failures.keys().next().value as string;
      this.failures.delete(oldest);
      this.announced.delete(oldest);
    }
  }

  /** True the first time it is asked about a block (so a block is logged once, not once per refused attempt). */
  announce(client: string, now: number, blockedMs: number): boolean {
    const until = this.announced.get(client);
    if (until !== undefined && until > now) return false;
    this.announced.set(client, now + blockedMs);
    if (this.announced.size > this.maxClients) this.announced.delete(this.announced.keys().next().value as string);
    return true;
  }

  private recent(client: string, now: number): number[] {
    const times = this.failures.get(client);
    if (!times) return [];
    while (times.length > 0 && times[0]! <= now - this.windowMs) times.shift();
    if (times.length === 0) this.failures.delete(client);
    return times;
  }
}
