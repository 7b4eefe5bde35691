// Owns a bounded history of one queue's cumulative accounting (counters and histogram buckets) and gauges,
// one sample per collection, and what can be derived from it: rates and histogram quantiles over a trailing
// window, and per-point series for charts. At most maxPoints are kept: when full, the point in the densest
// spot goes, so a young history stays fine-grained and an old one thins out evenly over the horizon. Memory
// follows what moves: an older point keeps only how its accounting differs from the next one (exact integer
// differences), and a gauge that does not move is kept once (point-columns.ts). Pure: no Redis, no clock.
import { histogramQuantile } from './histogram-quantile.js';
import { PointColumns } from './point-columns.js';

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

/**
 * The times (ms) of a ring's points, never written once made: rings pushed the same times with the same options
 * (a board's rings, one push per collection) hold the same Times, so a fleet keeps one copy of them instead of one
 * per queue, and the thinning (which scans them all) runs once per collection instead of once per queue.
 */
class Times {
  /** The last step taken from these times: the rings that hold them take the same one, one after another. */
  private memo: { at: number; maxPoints: number; horizonMs: number; step: TimesStep | null } | undefined;

  constructor(
    readonly ts: Float64Array,
    readonly n: number,
  ) {}

  /**
   * These times with `at` pushed, then what the ring's bounds drop (see AccountingRing.push), and the indexes
   * dropped, in the order dropped; null when `at` is older than the newest point (a clock step backwards).
   */
  step(at: number, opts: RingOptions): TimesStep | null {
    const m = this.memo;
    if (m !== undefined && Object.is(m.at, at) && m.maxPoints === opts.maxPoints && m.horizonMs === opts.horizonMs) return m.step;
    const step = this.take(at, opts);
    this.memo = { at, maxPoints: opts.maxPoints, horizonMs: opts.horizonMs, step };
    return step;
  }

  private take(at: number, opts: RingOptions): TimesStep | null {
    const { ts } = this;
    let n = this.n;
    if (n > 0 && at < ts[n - 1]!) return null;
    const w = new Float64Array(n + 1);
    w.set(ts.subarray(0, n));
    w[n++] = at;
    const removed: number[] = [];
    const remove = (i: number): void => {
      w.copyWithin(i, i + 1, n);
      n -= 1;
      removed.push(i);
    };
    // Past the horizon only the newest older point matters: it is the base of the longest window.
    while (n > 2 && w[1]! <= at - opts.horizonMs) remove(0);
    if (n > opts.maxPoints) {
      // Drop the interior point whose neighbours are closest together (ties: the older one).
      let drop = 1;
      for (let i = 2; i < n - 1; i += 1) if (w[i + 1]! - w[i - 1]! < w[drop + 1]! - w[drop - 1]!) drop = i;
      remove(drop);
    }
    return { times: new Times(n === w.length ? w : w.slice(0, n), n), removed };
  }
}

interface TimesStep {
  times: Times;
  removed: readonly number[];
}

/** No point yet: where every ring starts. */
const NO_TIMES = new Times(new Float64Array(0), 0);

export class AccountingRing {
  /** Per point: its time (ms), shared with every ring pushed the same times (see Times). */
  private times = NO_TIMES;
  /** Per point: flags, gauges (each column kept once while it does not move). */
  private readonly pts: PointColumns;
  /**
   * Per point: its accounting (null without), either whole (a Row: counters, then per histogram its cumulative
   * buckets and count) or as a Change back from the next point, which then has the same flags. The newest point,
   * and any whose values are not exact integers, is whole; the others cost what moved between two points.
   */
  private rows: Array<Row | Change | null> = [];
  private n = 0;
  /** The `source` of the last point pushed (see push). */
  private lastSource: object | undefined;
  private readonly aStride: number;
  private readonly hStride: number;

  constructor(
    private readonly layout: RingLayout,
    private readonly opts: RingOptions,
  ) {
    if (opts.maxPoints < 3) throw new Error('an accounting ring needs room for at least 3 points');
    // Buckets then count: the count is the +Inf bucket, the last cumulative one (the sum is never read back).
    this.hStride = layout.bounds.length + 1;
    this.aStride = layout.counters.length + layout.histograms.length * this.hStride;
    this.pts = new PointColumns(1 + layout.gauges.length, opts.maxPoints + 1);
  }

  get size(): number {
    return this.n;
  }

  /** Accounting numbers held (whole rows and changes): what the ring's memory grows with besides the gauges. */
  get accountingNumbers(): number {
    let held = 0;
    for (const r of this.rows) if (r) held += r.length;
    return held;
  }

  /**
   * `source`: what the sample's accounting was read from, when the caller's objects are never written once made
   * (the board's totals per read-back, status/event-accounting.ts): pushed again with the same source, the
   * accounting is known equal to the last point's without comparing it number by number.
   */
  push(sample: AccountingSample, source?: object): void {
    const step = this.times.step(sample.at, this.opts);
    if (step === null) return; // a clock step backwards: keep history monotonic
    const same = source !== undefined && source === this.lastSource;
    this.lastSource = source;
    this.write(this.n, sample, same);
    this.n += 1;
    // The points the bounds drop (Times.take), in the same order.
    for (const i of step.removed) this.remove(i);
    this.times = step.times;
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
    const cur = this.rows[last] as Row;
    const old = this.rowAt(base);
    const increase = (name: string): number => {
      const c = counters.indexOf(name);
      if (c < 0) throw new Error(`unknown counter ${name}`);
      return resetAware(cur[c]!, old[c]!);
    };
    const histDelta = (name: string): { buckets: number[]; count: number } => {
      const h = histograms.indexOf(name);
      if (h < 0) throw new Error(`unknown histogram ${name}`);
      if (!this.hasHist(last, h)) return { buckets: [], count: 0 };
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
    // Every point's row, newest first, each from the one after it.
    const whole = new Array<Row | null>(this.n).fill(null);
    for (let i = this.n - 1; i >= 0; i -= 1) {
      const r = this.rows[i]!;
      whole[i] = r === null || r instanceof Float64Array ? r : this.back(whole[i + 1]!, r, new Float64Array(this.aStride));
    }
    for (let i = 0; i < this.n; i += 1) {
      out.t.push(this.at(i) / 1000);
      gauges.forEach((g, k) => out.gauges[g]!.push(this.pts.get(i, 1 + k)));
      const dt = i > 0 ? (this.at(i) - this.at(i - 1)) / 1000 : 0;
      const both = i > 0 && this.hasCounters(i) && this.hasCounters(i - 1) && dt > 0;
      counters.forEach((c, k) => out.rates[c]!.push(both ? resetAware(whole[i]![k]!, whole[i - 1]![k]!) / dt : null));
    }
    return out;
  }

  private at(i: number): number {
    return this.times.ts[i]!;
  }

  private flags(i: number): number {
    return this.pts.get(i, 0);
  }

  private hasCounters(i: number): boolean {
    return (this.flags(i) & 1) !== 0;
  }

  private hasHist(i: number, h: number): boolean {
    return (this.flags(i) & (2 << h)) !== 0;
  }

  private histOffset(h: number): number {
    return this.layout.counters.length + h * this.hStride;
  }

  private write(i: number, s: AccountingSample, same: boolean): void {
    const { histograms, gauges } = this.layout;
    let flags = s.counters ? 1 : 0;
    if (s.histograms) for (let h = 0; h < histograms.length; h += 1) if (s.histograms[histograms[h]!]) flags |= 2 << h;
    point[0] = flags;
    for (let k = 0; k < gauges.length; k += 1) point[1 + k] = s.gauges[gauges[k]!] ?? 0;
    point.length = 1 + gauges.length;
    this.pts.push(point);
    const prev = i > 0 ? this.rows[i - 1] : null;
    const follows = flags !== 0 && prev instanceof Float64Array && this.flags(i - 1) === flags;
    // An idle queue's accounting equals the point before: that row moves up, the point before keeps nothing.
    if (follows && (same || this.sameRow(prev, s))) {
      this.rows[i] = prev;
      this.rows[i - 1] = UNCHANGED;
      return;
    }
    const row = flags === 0 ? null : this.row(s);
    this.rows[i] = row;
    // The point before keeps only what changed since it, when the two can be told apart exactly.
    if (row && follows) this.rows[i - 1] = this.change(row, prev) ?? prev;
  }

  /** Whether the sample's accounting equals `row` (a row with the same flags). */
  private sameRow(row: Row, s: AccountingSample): boolean {
    const { counters, histograms, bounds } = this.layout;
    for (let k = 0; k < counters.length; k += 1) if (row[k] !== (s.counters?.[counters[k]!] ?? 0)) return false;
    for (let h = 0; h < histograms.length; h += 1) {
      const src = s.histograms?.[histograms[h]!];
      if (!src) continue;
      const ho = this.histOffset(h);
      if (row[ho + bounds.length] !== src.count) return false;
      for (let b = 0; b < bounds.length; b += 1) if (row[ho + b] !== (src.buckets[b] ?? 0)) return false;
    }
    return true;
  }

  private row(s: AccountingSample): Row {
    const { counters, histograms, bounds } = this.layout;
    const row = new Float64Array(this.aStride);
    counters.forEach((c, k) => (row[k] = s.counters?.[c] ?? 0));
    histograms.forEach((name, h) => {
      const src = s.histograms?.[name];
      if (!src) return;
      const ho = this.histOffset(h);
      for (let b = 0; b < bounds.length; b += 1) row[ho + b] = src.buckets[b] ?? 0;
      row[ho + bounds.length] = src.count;
    });
    return zeroRow(row);
  }

  /**
   * `older` as a Change back from `newer`: the indexes and differences of what moved, a histogram's taken per
   * bucket (one observation moves one entry, not every cumulative bucket above it). Null unless both rows hold
   * integers small enough for every difference and its undoing to be exact.
   */
  private change(newer: Row, older: Row): Change | null {
    if (!exactIntegers(newer) || !exactIntegers(older)) return null;
    const c = this.layout.counters.length;
    const out = scratch;
    let len = 0;
    let prev = 0;
    for (let k = 0; k < this.aStride; k += 1) {
      const d = newer[k]! - older[k]!;
      // Inside a histogram, each entry's difference less the one of the bucket below it.
      const inHist = k >= c && (k - c) % this.hStride !== 0;
      const v = inHist ? d - prev : d;
      prev = d;
      if (v !== 0) {
        out[len++] = k;
        out[len++] = v;
      }
    }
    if (len === 0) return UNCHANGED;
    // Most of the row moved (a pair costs two numbers): the whole row is smaller.
    return len < this.aStride ? out.slice(0, len) : null;
  }

  /** `newer` with `change` undone, into `out` (may be `newer`). */
  private back(newer: Row, change: Change, out: Row): Row {
    if (out !== newer) out.set(newer);
    const c = this.layout.counters.length;
    for (let p = 0; p < change.length; p += 2) {
      const k = change[p]!;
      const v = change[p + 1]!;
      if (k < c) {
        out[k]! -= v;
        continue;
      }
      // A per-bucket difference moves its bucket and every cumulative one above it, up to the count.
      const end = c + (Math.floor((k - c) / this.hStride) + 1) * this.hStride;
      for (let j = k; j < end; j += 1) out[j]! -= v;
    }
    return out;
  }

  /** Point i's whole row (it carries accounting). */
  private rowAt(i: number): Row {
    const r = this.rows[i]!;
    if (r instanceof Float64Array) return r;
    let j = i;
    let moved = false;
    for (; !(this.rows[j] instanceof Float64Array); j += 1) moved ||= this.rows[j]!.length > 0;
    // Nothing changed since: the newer row is this one's too (an idle queue's windows copy nothing).
    if (!moved) return this.rows[j] as Row;
    const out = new Float64Array(this.rows[j] as Row);
    for (let k = j - 1; k >= i; k -= 1) this.back(out, this.rows[k] as Change, out);
    return out;
  }

  private remove(i: number): void {
    const r = this.rows[i]!;
    const before = i > 0 ? this.rows[i - 1] : null;
    // The point before, kept as a change back to this one, now reaches back from the point after.
    if (before && !(before instanceof Float64Array)) {
      if (r instanceof Float64Array) this.rows[i - 1] = this.back(r, before, new Float64Array(this.aStride));
      else if (r) this.rows[i - 1] = merge(before, r);
    }
    this.pts.remove(i);
    this.rows.splice(i, 1);
    this.n -= 1;
  }
}

/** A point's accounting values in full (see AccountingRing.rows). */
type Row = Float64Array;
/** [index, difference, ...], indexes ascending: what a point's row differs by from the next point's. */
type Change = readonly number[];
const UNCHANGED: Change = Object.freeze([]);
/** A point's columns as pushed (flags, gauges), reused. */
const point: number[] = [];
const scratch: number[] = [];
/** Integers up to 2^50: their differences, and sums of those, stay exact in a double. */
const EXACT_LIMIT = 2 ** 50;

/** One row of +0s per length, shared by every ring: rows are never written once made (back() writes copies). */
const zeroRows = new Map<number, Row>();

/** `row`, or the shared row of zeros it equals (a queue that never saw a job costs no row of its own). */
function zeroRow(row: Row): Row {
  for (let k = 0; k < row.length; k += 1) if (!Object.is(row[k], 0)) return row;
  let zeros = zeroRows.get(row.length);
  if (!zeros) zeroRows.set(row.length, (zeros = row));
  return zeros;
}

function exactIntegers(row: Row): boolean {
  for (let k = 0; k < row.length; k += 1) if (!Number.isInteger(row[k]) || Math.abs(row[k]!) > EXACT_LIMIT) return false;
  return true;
}

/** Two changes back to back (a from b's point, b from the next) as one: the differences add up. */
function merge(a: Change, b: Change): Change {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const ka = i < a.length ? a[i]! : Number.POSITIVE_INFINITY;
    const kb = j < b.length ? b[j]! : Number.POSITIVE_INFINITY;
    const k = Math.min(ka, kb);
    let v = 0;
    if (ka === k) {
      v += a[i + 1]!;
      i += 2;
    }
    if (kb === k) {
      v += b[j + 1]!;
      j += 2;
    }
    if (v !== 0) out.push(k, v);
  }
  return out.length === 0 ? UNCHANGED : out.slice();
}

function resetAware(cur: number, old: number): number {
  return cur >= old ? cur - old : cur;
}
