// Owns the per-point numbers of one history ring (its time, flags and gauges, see accounting-ring.ts): a column
// whose value is the same at every point held is kept once; only the columns that differ between the points are
// kept per point. An idle queue's points cost their timestamp (8 bytes) instead of every column; values come back
// exactly as pushed (compared with Object.is: -0 and NaN included). Pure: no clock.

/** Per column mask: each column's place in a point's stored values, or -1 while it is kept once. */
const slotCache = new Map<number, Int8Array>();

function slotsOf(mask: number, columns: number): Int8Array {
  const key = mask * 32 + columns;
  let slots = slotCache.get(key);
  if (!slots) {
    slots = new Int8Array(columns).fill(-1);
    let next = 0;
    for (let c = 0; c < columns; c += 1) if (mask & (1 << c)) slots[c] = next++;
    slotCache.set(key, slots);
  }
  return slots;
}

export class PointColumns {
  /** One value per column (those kept once), then `stride` values per point. */
  private buf: Float64Array;
  /** Bit c set: column c is stored per point. */
  private mask = 0;
  private slots: Int8Array;
  private stride = 0;
  private cap: number;
  private n = 0;
  /** Pushes since columns were last checked for having become steady again. */
  private sinceCheck = 0;

  /** @param limit the most points ever held at once */
  constructor(
    private readonly columns: number,
    private readonly limit: number,
  ) {
    if (columns > 30) throw new Error('point columns: at most 30 columns');
    this.slots = slotsOf(0, columns);
    this.cap = Math.min(8, limit);
    this.buf = new Float64Array(columns);
  }

  get size(): number {
    return this.n;
  }

  /** Values kept per point: the columns that differ between the points held. */
  get perPoint(): number {
    return this.stride;
  }

  get(i: number, c: number): number {
    const s = this.slots[c]!;
    return s < 0 ? this.buf[c]! : this.buf[this.columns + i * this.stride + s]!;
  }

  push(values: ArrayLike<number>): void {
    let mask = this.mask;
    if (this.n > 0) for (let c = 0; c < this.columns; c += 1) if (!(mask & (1 << c)) && !Object.is(this.buf[c], values[c])) mask |= 1 << c;
    // A column that moved once (a burst) would otherwise cost a value per point for as long as the ring lives.
    this.sinceCheck += 1;
    if (this.sinceCheck >= this.limit) {
      this.sinceCheck = 0;
      mask = this.steady(mask, values);
    }
    const cap = this.n + 1 > this.cap ? Math.min(this.limit, Math.max(8, this.cap * 2)) : this.cap;
    if (mask !== this.mask || cap !== this.cap) this.relayout(mask, cap);
    const at = this.columns + this.n * this.stride;
    for (let c = 0; c < this.columns; c += 1) {
      const s = this.slots[c]!;
      if (s >= 0) this.buf[at + s] = values[c]!;
      else if (this.n === 0) this.buf[c] = values[c]!;
    }
    this.n += 1;
  }

  remove(i: number): void {
    const { columns, stride } = this;
    if (stride > 0) this.buf.copyWithin(columns + i * stride, columns + (i + 1) * stride, columns + this.n * stride);
    this.n -= 1;
  }

  /** `mask` without the columns whose every held value equals the one being pushed. */
  private steady(mask: number, values: ArrayLike<number>): number {
    let out = mask;
    for (let c = 0; c < this.columns; c += 1) {
      if (!(mask & (1 << c)) || !(this.mask & (1 << c))) continue;
      let same = true;
      for (let i = 0; i < this.n && same; i += 1) same = Object.is(this.get(i, c), values[c]);
      if (same) out &= ~(1 << c);
    }
    return out;
  }

  private relayout(mask: number, cap: number): void {
    const slots = slotsOf(mask, this.columns);
    let stride = 0;
    for (let c = 0; c < this.columns; c += 1) if (mask & (1 << c)) stride += 1;
    const next = new Float64Array(this.columns + cap * stride);
    // A column kept once from now on holds the same value at every point: point 0's.
    for (let c = 0; c < this.columns; c += 1) next[c] = this.n > 0 ? this.get(0, c) : this.buf[c]!;
    for (let i = 0; i < this.n; i += 1) {
      for (let c = 0; c < this.columns; c += 1) if (slots[c]! >= 0) next[this.columns + i * stride + slots[c]!] = this.get(i, c);
    }
    this.buf = next;
    this.mask = mask;
    this.slots = slots;
    this.stride = stride;
    this.cap = cap;
  }
}
