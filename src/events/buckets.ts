// The one histogram bucket layout (upper bounds in seconds) shared by the wait, processing and end-to-end
// histograms: identical buckets are what lets Prometheus sum them across queues and replicas.
// From 5 ms (a noop job's round trip) up to 6 h (long exports, long delays), roughly ×2–×2.5 per step. This
// fine layout is what the accounting stores and the status board estimates from; the classic exposition
// renders only EXPOSED_BUCKETS_SECONDS, a subset, so its cumulative counts are exact.

export const EVENT_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400, 21_600,
]);

/**
 * The bounds /metrics renders (classic histograms): seven, still reaching 6 h, and including the wait-time SLO
 * thresholds (30 s, and 300 s for export). 10 series per histogram instead of 24 keep a queue with traffic
 * within the series budget (docs/metrics.md, cardinality). Every bound must be one of EVENT_BUCKETS_SECONDS.
 */
export const EXPOSED_BUCKETS_SECONDS: readonly number[] = Object.freeze([0.1, 1, 5, 30, 300, 1800, 21_600]);

/** Index of the first bucket whose upper bound holds `ms`; EVENT_BUCKETS_SECONDS.length means +Inf. */
export function bucketIndex(ms: number): number {
  const seconds = ms / 1000;
  let lo = 0;
  let hi = EVENT_BUCKETS_SECONDS.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (seconds <= (EVENT_BUCKETS_SECONDS[mid] as number)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Schema of the native histograms (/metrics in the protobuf exposition): bucket i holds (2^((i-1)/4), 2^(i/4)]
 * seconds, a growth of 19% per bucket. Schema 3 (9%) would double the populated buckets, i.e. the accounting's
 * fields in Redis and the read-back per collection, for a quantile error that is already below the spread of
 * job durations; schema 2 is the resolution of the OpenTelemetry default at 160 buckets over this range.
 */
export const NATIVE_SCHEMA = 2;

/** The native bucket index holding `seconds` (> 0): the i with 2^((i-1)/4) < seconds <= 2^(i/4). */
export function nativeBucketIndex(seconds: number): number {
  const per = 2 ** NATIVE_SCHEMA;
  let i = Math.ceil(Math.log2(seconds) * per);
  // Math.log2 can land a hair off at a bucket's exact bound; the bounds themselves decide.
  if (2 ** ((i - 1) / per) >= seconds) i -= 1;
  else if (2 ** (i / per) < seconds) i += 1;
  return i;
}

/** Upper bound (seconds) of native bucket `i`. */
export function nativeBucketUpper(i: number): number {
  return 2 ** (i / 2 ** NATIVE_SCHEMA);
}
