// Owns the rhythm of a leader lease, whatever stores it: one acquire-or-renew step at once, then a holder renews every
// third of the lease and a standby retries every fifth (a dead leader is replaced within lease + lease/5); after a step
// that could not reach the store, the next comes within 250 ms.

export interface LeaseTicksOptions {
  leaseMs: number;
  /** Whether the lease is held now (after the step). */
  held: () => boolean;
  /** One acquire-or-renew step; false when the store could not be asked. */
  step: () => Promise<boolean>;
}

export class LeaseTicks {
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;

  constructor(private readonly o: LeaseTicksOptions) {}

  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    const tick = (): void => {
      void this.o.step().then((ok) => {
        if (this.stopped) return;
        const every = this.o.held() ? this.o.leaseMs / 3 : this.o.leaseMs / 5;
        this.timer = setTimeout(tick, ok ? every : Math.min(250, every));
        this.timer.unref();
      });
    };
    tick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
