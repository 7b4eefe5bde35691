// Owns a bounded history of one queue's cumulative accounting (counters and histogram buckets) and gauges,
// one sample per collection, and what can be derived from it: rates and histogram quantiles over a trailing
// window, and per-point series for charts. At most maxPoints are kept: when full, the point in the densest
// spot goes, so a young history stays fine-grained and an old one thins out evenly over the horizon.
// Pure: no Redis, no clock.
import { histogramQuantile } from './histogram-quantile.js';

export interface CumulativeHistogram {
  /** Cumulative counts, one per bound of the layout. */
  buckets: ArrayLike<number>;
  count: number;
  sum: number;
}

export interface AccountingSample {
  /** Wall-clock ms of the collection. */
  at: number;
  /** Point-in-time values kept for charts. Missing names are recorded as 0. */
  gauges: Readonly<Record<string, number>>;
  /** Cumulative totals; absent while there is no accounting to read. */
  counters?: Readonly<Record<string, number>>;
  histograms?: Readonly<Record<string, CumulativeHistogram>>;
}

export interface RingLayout {
  gauges: readonly string[];
  counters: readonly string[];
  histograms: readonly string[];
  /** Upper bounds of the finite buckets, shared by every histogram. */
  bounds: readonly number[];
}

export interface RingOptions {
  /** Hard cap on kept points (the memory bound per queue). */
  maxPoints: number;
  /** How far back windows and charts reach; one older point is kept as the base of the longest window. */
  horizonMs: number;
}

export interface WindowStats {
  /** Seconds actually covered: shorter than asked while the history is young. */
  seconds: number;
  /** Increase of a counter over the window (a counter that went down is taken as reset, Prometheus-style). */
  increase(counter: string): number;
  rate(counter: string): number;
  observations(histogram: string): number;
  /** Quantile of the observations made inside the window; null when there were none. */
  quantile(histogram: string, q: number): number | null;
}

export interface RingHistory {
  /** Epoch seconds of each point. */
  t: number[];
  gauges: Record<string, number[]>;
  /** Per-second rate between a point and the one before it; null at the first point and where accounting is missing. */
  rates: Record<string, Array<number | null>>;
}

export class AccountingRing {
  /** Per point: at, flags, gauges. */
  private pts: Float64Array;
  /**
   * Per point: counters, then per histogram its buckets, count and sum; null without accounting. A point whose
   * accounting equals the one before shares that row, so an idle queue keeps one row, not one per point.
   */
  private rows: Array<Float64Array | null> = [];
  private n = 0;
  private cap: number;
  private readonly pStride: number;
  private readonly aStride: number;
  private readonly hStride: number;

  constructor(
    private readonly layout: RingLayout,
    private readonly opts: RingOptions,
  ) {
    if (opts.maxPoints < 3) throw new Error('an accounting ring needs room for at least 3 points');
    this.pStride = 2 + layout.gauges.length;
    this.hStride = layout.bounds.length + 2;
    this.aStride = layout.counters.length + layout.histograms.length * this.hStride;
    // Gauges in one flat buffer grown by doubling (no object per point); accounting rows only where it changed.
    this.cap = Math.min(8, opts.maxPoints + 1);
    this.pts = new Float64Array(this.cap * this.pStride);
  }

  get size(): number {
    return this.n;
  }

  /** Distinct accounting rows held: what the ring's memory grows with besides the gauges. */
  get accountingRows(): number {
    return new Set(this.rows.filter((r) => r !== null)).size;
  }

  push(sample: AccountingSample): void {
    if (this.n > 0 && sample.at < this.at(this.n - 1)) return; // a clock step backwards: keep history monotonic
    this.write(this.n, sample);
    this.n += 1;
    // Past the horizon only the newest older point matters: it is the base of the longest window.
    while (this.n > 2 && this.at(1) <= sample.at - this.opts.horizonMs) this.remove(0);
    if (this.n > this.opts.maxPoints) {
      // Drop the interior point whose neighbours are closest together (ties: the older one).
      let drop = 1;
      for (let i = 2; i < this.n - 1; i += 1) if (this.at(i + 1) - this.at(i - 1) < this.at(drop + 1) - this.at(drop - 1)) drop = i;
      this.remove(drop);
    }
  }

  /** Stats over the trailing `seconds`, or null without two points that both carry accounting. */
  window(seconds: number): WindowStats | null {
    const last = this.n - 1;
    if (last < 1 || !this.hasCounters(last)) return null;
    const from = this.at(last) - seconds * 1000;
    let base = -1;
    for (let i = last - 1; i >= 0; i -= 1) {
      if (!this.hasCounters(i)) break;
      base = i;
      if (this.at(i) <= from) break;
    }
    if (base < 0 || this.at(base) >= this.at(last)) return null;
    const covered = (this.at(last) - this.at(base)) / 1000;
    const { counters, histograms, bounds } = this.layout;
    const increase = (name: string): number => {
      const c = counters.indexOf(name);
      if (c < 0) throw new Error(`unknown counter ${name}`);
      return resetAware(this.rows[last]![c]!, this.rows[base]![c]!);
    };
    const histDelta = (name: string): { buckets: number[]; count: number } => {
      const h = histograms.indexOf(name);
      if (h < 0) throw new Error(`unknown histogram ${name}`);
      if (!this.hasHist(last, h)) return { buckets: [], count: 0 };
      const cur = this.rows[last]!;
      const old = this.rows[base]!;
      const o = this.histOffset(h);
      const nb = bounds.length;
      // A histogram whose count went down was reset: everything it holds happened inside the window.
      const reset = !this.hasHist(base, h) || cur[o + nb]! < old[o + nb]!;
      const buckets: number[] = [];
      for (let b = 0; b < nb; b += 1) buckets.push(cur[o + b]! - (reset ? 0 : old[o + b]!));
      return { buckets, count: cur[o + nb]! - (reset ? 0 : old[o + nb]!) };
    };
    return {
      seconds: covered,
      increase,
      rate: (name) => increase(name) / covered,
      observations: (name) => histDelta(name).count,
      quantile(name, q) {
        const d = histDelta(name);
        return histogramQuantile(q, bounds, d.buckets, d.count);
      },
    };
  }

  history(): RingHistory {
    const { gauges, counters } = this.layout;
    const out: RingHistory = { t: [], gauges: {}, rates: {} };
    for (const g of gauges) out.gauges[g] = [];
    for (const c of counters) out.rates[c] = [];
    for (let i = 0; i < this.n; i += 1) {
      out.t.push(this.at(i) / 1000);
      gauges.forEach((g, k) => out.gauges[g]!.push(this.pts[i * this.pStride + 2 + k]!));
      const dt = i > 0 ? (this.at(i) - this.at(i - 1)) / 1000 : 0;
      const both = i > 0 && this.hasCounters(i) && this.hasCounters(i - 1) && dt > 0;
      counters.forEach((c, k) => out.rates[c]!.push(both ? resetAware(this.rows[i]![k]!, this.rows[i - 1]![k]!) / dt : null));
    }
    return out;
  }

  private at(i: number): number {
    return this.pts[i * this.pStride]!;
  }

  private hasCounters(i: number): boolean {
    return (this.pts[i * this.pStride + 1]! & 1) !== 0;
  }

  private hasHist(i: number, h: number): boolean {
    return (this.pts[i * this.pStride + 1]! & (2 << h)) !== 0;
  }

  private histOffset(h: number): number {
    return this.layout.counters.length + h * this.hStride;
  }

  private write(i: number, s: AccountingSample): void {
    if (i + 1 > this.cap) {
      this.cap = Math.min(this.opts.maxPoints + 1, Math.max(8, this.cap * 2));
      this.pts = grow(this.pts, this.cap * this.pStride);
    }
    const o = i * this.pStride;
    this.pts[o] = s.at;
    this.layout.gauges.forEach((g, k) => (this.pts[o + 2 + k] = s.gauges[g] ?? 0));
    let flags = s.counters ? 1 : 0;
    this.layout.histograms.forEach((name, h) => {
      if (s.histograms?.[name]) flags |= 2 << h;
    });
    this.pts[o + 1] = flags;
    const prev = i > 0 && this.pts[(i - 1) * this.pStride + 1] === flags ? this.rows[i - 1]! : null;
    this.rows[i] = flags === 0 ? null : prev && this.sameRow(prev, s) ? prev : this.row(s);
  }

  private row(s: AccountingSample): Float64Array {
    const { counters, histograms, bounds } = this.layout;
    const row = new Float64Array(this.aStride);
    counters.forEach((c, k) => (row[k] = s.counters?.[c] ?? 0));
    histograms.forEach((name, h) => {
      const src = s.histograms?.[name];
      if (!src) return;
      const ho = this.histOffset(h);
      for (let b = 0; b < bounds.length; b += 1) row[ho + b] = src.buckets[b] ?? 0;
      row[ho + bounds.length] = src.count;
      row[ho + bounds.length + 1] = src.sum;
    });
    return row;
  }

  /** Whether the sample's accounting equals `row` (a row with the same flags). */
  private sameRow(row: Float64Array, s: AccountingSample): boolean {
    const { counters, histograms, bounds } = this.layout;
    for (let k = 0; k < counters.length; k += 1) if (row[k] !== (s.counters?.[counters[k]!] ?? 0)) return false;
    for (let h = 0; h < histograms.length; h += 1) {
      const src = s.histograms?.[histograms[h]!];
      if (!src) continue;
      const ho = this.histOffset(h);
      if (row[ho + bounds.length] !== src.count || row[ho + bounds.length + 1] !== src.sum) return false;
      for (let b = 0; b < bounds.length; b += 1) if (row[ho + b] !== (src.buckets[b] ?? 0)) return false;
    }
    return true;
  }

  private remove(i: number): void {
    this.pts.copyWithin(i * this.pStride, (i + 1) * this.pStride, this.n * this.pStride);
    this.rows.splice(i, 1);
    this.n -= 1;
  }
}

function grow(buf: Float64Array, length: number): Float64Array {
  const out = new Float64Array(length);
  out.set(buf.subarray(0, Math.min(buf.length, length)));
  return out;
}

function resetAware(cur: number, old: number): number {
  return cur >= old ? cur - old : cur;
}
