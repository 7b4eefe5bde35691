// Owns how the collection interval stretches when a whole cycle (collection, read-back, rendering, status board)
// outgrows it. Running cycles back to back would keep Redis and the event loop busy without a pause, and judging
// freshness by the configured interval would blank good data (gauges absent, `up 0`, /readyz 503) only because
// the fleet is large. So the interval grows to half again the last good cycle, and shrinks back as soon as the
// cycles fit; freshness is judged against the interval in force. Only successful cycles stretch it: a hung
// Redis makes collections fail, and those must still go stale on time.

/** Headroom over the last good cycle: a pause of a third of each interval for Redis, scrapes and the reader. */
const HEADROOM = 1.5;

/** The interval (seconds) to use after a cycle that took `cycleSeconds`; `configured` when the cycle fits. */
export function stretchedInterval(configured: number, cycleSeconds: number, ok: boolean): number {
  if (!ok || cycleSeconds <= configured) return configured;
  return Math.ceil(cycleSeconds * HEADROOM * 10) / 10;
}
