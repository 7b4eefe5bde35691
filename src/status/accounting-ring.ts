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

interface Point {
  at: number;
  gauges: Float64Array;
  counters: Float64Array | null;
  /** Per histogram: cumulative buckets, then count, then sum. */
  hists: Array<Float64Array | null> | null;
}

export class AccountingRing {
  private readonly points: Point[] = [];

  constructor(
    private readonly layout: RingLayout,
    private readonly opts: RingOptions,
  ) {
    if (opts.maxPoints < 3) throw new Error('an accounting ring needs room for at least 3 points');
  }

  get size(): number {
    return this.points.length;
  }

  push(sample: AccountingSample): void {
    const pts = this.points;
    const prev = pts[pts.length - 1];
    if (prev && sample.at < prev.at) return; // a clock step backwards: keep history monotonic
    pts.push(this.toPoint(sample, prev));
    // Past the horizon only the newest older point matters: it is the base of the longest window.
    while (pts.length > 2 && pts[1]!.at <= sample.at - this.opts.horizonMs) pts.shift();
    if (pts.length > this.opts.maxPoints) {
      // Drop the interior point whose neighbours are closest together (ties: the older one).
      let drop = 1;
      for (let i = 2; i < pts.length - 1; i += 1) if (pts[i + 1]!.at - pts[i - 1]!.at < pts[drop + 1]!.at - pts[drop - 1]!.at) drop = i;
      pts.splice(drop, 1);
    }
  }

  /** Stats over the trailing `seconds`, or null without two points that both carry accounting. */
  window(seconds: number): WindowStats | null {
    const last = this.points[this.points.length - 1];
    if (!last?.counters) return null;
    const from = last.at - seconds * 1000;
    let base: Point | undefined;
    for (let i = this.points.length - 2; i >= 0; i -= 1) {
      const p = this.points[i]!;
      if (!p.counters) break;
      base = p;
      if (p.at <= from) break;
    }
    if (!base || base.at >= last.at) return null;
    const covered = (last.at - base.at) / 1000;
    const { counters, histograms, bounds } = this.layout;
    const increase = (name: string): number => {
      const i = counters.indexOf(name);
      if (i < 0) throw new Error(`unknown counter ${name}`);
      return resetAware(last.counters![i]!, base.counters![i]!);
    };
    const histDelta = (name: string): { buckets: number[]; count: number } => {
      const h = histograms.indexOf(name);
      if (h < 0) throw new Error(`unknown histogram ${name}`);
      const cur = last.hists?.[h];
      if (!cur) return { buckets: [], count: 0 };
      const old = base.hists?.[h];
      const nb = bounds.length;
      // A histogram whose count went down was reset: everything it holds happened inside the window.
      const reset = !old || cur[nb]! < old[nb]!;
      const buckets: number[] = [];
      for (let b = 0; b < nb; b += 1) buckets.push(reset ? cur[b]! : cur[b]! - old[b]!);
      return { buckets, count: reset ? cur[nb]! : cur[nb]! - old[nb]! };
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
    this.points.forEach((p, idx) => {
      out.t.push(p.at / 1000);
      gauges.forEach((g, i) => out.gauges[g]!.push(p.gauges[i]!));
      const prev = this.points[idx - 1];
      const dt = prev ? (p.at - prev.at) / 1000 : 0;
      counters.forEach((c, i) => {
        out.rates[c]!.push(prev?.counters && p.counters && dt > 0 ? resetAware(p.counters[i]!, prev.counters[i]!) / dt : null);
      });
    });
    return out;
  }

  private toPoint(s: AccountingSample, prev: Point | undefined): Point {
    const { gauges, counters, histograms, bounds } = this.layout;
    const g = Float64Array.from(gauges, (name) => s.gauges[name] ?? 0);
    let c: Float64Array | null = null;
    if (s.counters) {
      c = Float64Array.from(counters, (name) => s.counters![name] ?? 0);
      // Idle queues repeat the same totals: share the previous array instead of storing a copy.
      if (prev?.counters && sameValues(prev.counters, c)) c = prev.counters;
    }
    let hists: Point['hists'] = null;
    if (s.histograms) {
      hists = histograms.map((name, h) => {
        const src = s.histograms![name];
        if (!src) return null;
        const arr = new Float64Array(bounds.length + 2);
        for (let b = 0; b < bounds.length; b += 1) arr[b] = src.buckets[b] ?? 0;
        arr[bounds.length] = src.count;
        arr[bounds.length + 1] = src.sum;
        const old = prev?.hists?.[h];
        return old && sameValues(old, arr) ? old : arr;
      });
    }
    return { at: s.at, gauges: g, counters: c, hists };
  }
}

function resetAware(cur: number, old: number): number {
  return cur >= old ? cur - old : cur;
}

function sameValues(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}
