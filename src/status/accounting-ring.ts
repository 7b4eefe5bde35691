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
  /** Points back to back: at, flags, gauges, counters, then per histogram its buckets, count and sum. */
  private buf: Float64Array;
  private n = 0;
  private readonly stride: number;
  private readonly oCounters: number;
  private readonly oHists: number;
  private readonly hStride: number;

  constructor(
    private readonly layout: RingLayout,
    private readonly opts: RingOptions,
  ) {
    if (opts.maxPoints < 3) throw new Error('an accounting ring needs room for at least 3 points');
    this.oCounters = 2 + layout.gauges.length;
    this.oHists = this.oCounters + layout.counters.length;
    this.hStride = layout.bounds.length + 2;
    this.stride = this.oHists + layout.histograms.length * this.hStride;
    // One flat buffer, grown by doubling: a few hundred bytes per point and no object per point.
    this.buf = new Float64Array(Math.min(8, opts.maxPoints + 1) * this.stride);
  }

  get size(): number {
    return this.n;
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
      return resetAware(this.counter(last, c), this.counter(base, c));
    };
    const histDelta = (name: string): { buckets: number[]; count: number } => {
      const h = histograms.indexOf(name);
      if (h < 0) throw new Error(`unknown histogram ${name}`);
      if (!this.hasHist(last, h)) return { buckets: [], count: 0 };
      const cur = this.histOffset(last, h);
      const old = this.histOffset(base, h);
      const nb = bounds.length;
      // A histogram whose count went down was reset: everything it holds happened inside the window.
      const reset = !this.hasHist(base, h) || this.buf[cur + nb]! < this.buf[old + nb]!;
      const buckets: number[] = [];
      for (let b = 0; b < nb; b += 1) buckets.push(this.buf[cur + b]! - (reset ? 0 : this.buf[old + b]!));
      return { buckets, count: this.buf[cur + nb]! - (reset ? 0 : this.buf[old + nb]!) };
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
      gauges.forEach((g, k) => out.gauges[g]!.push(this.buf[i * this.stride + 2 + k]!));
      const dt = i > 0 ? (this.at(i) - this.at(i - 1)) / 1000 : 0;
      const both = i > 0 && this.hasCounters(i) && this.hasCounters(i - 1) && dt > 0;
      counters.forEach((c, k) => out.rates[c]!.push(both ? resetAware(this.counter(i, k), this.counter(i - 1, k)) / dt : null));
    }
    return out;
  }

  private at(i: number): number {
    return this.buf[i * this.stride]!;
  }

  private hasCounters(i: number): boolean {
    return (this.buf[i * this.stride + 1]! & 1) !== 0;
  }

  private hasHist(i: number, h: number): boolean {
    return (this.buf[i * this.stride + 1]! & (2 << h)) !== 0;
  }

  private counter(i: number, c: number): number {
    return this.buf[i * this.stride + this.oCounters + c]!;
  }

  private histOffset(i: number, h: number): number {
    return i * this.stride + this.oHists + h * this.hStride;
  }

  private write(i: number, s: AccountingSample): void {
    if ((i + 1) * this.stride > this.buf.length) {
      const grown = new Float64Array(Math.min(this.opts.maxPoints + 1, Math.max(8, (this.buf.length / this.stride) * 2)) * this.stride);
      grown.set(this.buf);
      this.buf = grown;
    }
    const { gauges, counters, histograms, bounds } = this.layout;
    const o = i * this.stride;
    this.buf.fill(0, o, o + this.stride);
    this.buf[o] = s.at;
    let flags = 0;
    gauges.forEach((g, k) => (this.buf[o + 2 + k] = s.gauges[g] ?? 0));
    if (s.counters) {
      flags |= 1;
      counters.forEach((c, k) => (this.buf[o + this.oCounters + k] = s.counters![c] ?? 0));
    }
    histograms.forEach((name, h) => {
      const src = s.histograms?.[name];
      if (!src) return;
      flags |= 2 << h;
      const ho = this.histOffset(i, h);
      for (let b = 0; b < bounds.length; b += 1) this.buf[ho + b] = src.buckets[b] ?? 0;
      this.buf[ho + bounds.length] = src.count;
      this.buf[ho + bounds.length + 1] = src.sum;
    });
    this.buf[o + 1] = flags;
  }

  private remove(i: number): void {
    this.buf.copyWithin(i * this.stride, (i + 1) * this.stride, this.n * this.stride);
    this.n -= 1;
  }
}

function resetAware(cur: number, old: number): number {
  return cur >= old ? cur - old : cur;
}
