// Quantiles from cumulative histogram buckets, computed the way Prometheus's histogram_quantile() does:
// find the bucket holding the rank, then interpolate linearly inside it. Pure; works for any bucket layout.

/**
 * @param q quantile in [0, 1]
 * @param bounds upper bounds of the finite buckets, ascending
 * @param cumulative cumulative counts, one per bound
 * @param count total observations (the +Inf bucket)
 * @returns the estimate, or null when there are no observations
 */
export function histogramQuantile(q: number, bounds: readonly number[], cumulative: ArrayLike<number>, count: number): number | null {
  if (!(count > 0) || Number.isNaN(q)) return null;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const rank = q * count;
  let i = 0;
  while (i < bounds.length && (cumulative[i] ?? 0) < rank) i += 1;
  // The rank lies in +Inf: like Prometheus, answer the highest finite bound, the most we can claim.
  if (i === bounds.length) return bounds.length > 0 ? bounds[bounds.length - 1]! : null;
  const upper = bounds[i]!;
  // The first bucket starts at 0 (durations are never negative) unless its bound is not positive.
  if (i === 0 && upper <= 0) return upper;
  const lower = i === 0 ? 0 : bounds[i - 1]!;
  const below = i === 0 ? 0 : (cumulative[i - 1] ?? 0);
  const inBucket = (cumulative[i] ?? 0) - below;
  if (inBucket <= 0) return upper;
  return lower + (upper - lower) * ((rank - below) / inBucket);
}
