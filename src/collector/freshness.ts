// Owns the one freshness rule: the last collection is stale once its last success is older than three collection
// intervals, the interval in force (sidecar/stretch.ts). /metrics, /health and /readyz, /api/queues and `top`
// all judge by it, so none of them shows a value another one has already called stale.

/** How many intervals a successful collection stays fresh. */
export const STALE_AFTER_INTERVALS = 3;

/** Seconds after its last success that a collection turns stale. */
export function staleLimitSeconds(intervalSeconds: number): number {
  return STALE_AFTER_INTERVALS * intervalSeconds;
}

/** Seconds since the last successful collection at `now` (ms), or null when none has succeeded yet. */
export function collectionAgeSeconds(s: { lastSuccessAt: number } | undefined, now: number): number | null {
  return s && s.lastSuccessAt > 0 ? (now - s.lastSuccessAt) / 1000 : null;
}

/** A collection succeeded once and not since the limit: its values must no longer be shown as current. */
export function isStale(s: { lastSuccessAt: number } | undefined, now: number, intervalSeconds: number): boolean {
  const age = collectionAgeSeconds(s, now);
  return age !== null && age > staleLimitSeconds(intervalSeconds);
}
