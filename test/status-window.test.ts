// Pure logic behind /api/queues: Prometheus-style quantiles, the thinned accounting ring and its windows,
// the per-queue health verdict and the board that joins them. Every expected number is worked out by hand.
import { describe, expect, it } from 'vitest';
import { JOB_STATES, type CollectionSnapshot, type QueueState } from '../src/domain/queue-snapshot.js';
import { QueueAccounting as EventAccounting } from '../src/events/accounting.js';
import { EVENT_BUCKETS_SECONDS } from '../src/events/buckets.js';
import { AccountingRing, type AccountingSample } from '../src/status/accounting-ring.js';
import { boardAccounting } from '../src/status/event-accounting.js';
import { histogramQuantile } from '../src/status/histogram-quantile.js';
import { PointColumns } from '../src/status/point-columns.js';
import { QueueBoard, type BoardAccounting } from '../src/status/queue-board.js';
import { assessQueue, formatAge, type QueueHealthInput } from '../src/status/queue-health.js';

const BOUNDS = [1, 2, 5];

describe('histogramQuantile', () => {
  // Buckets: 2 obs <= 1 s, 4 in (1, 2], 2 in (2, 5], 2 above 5 (count 10).
  const cum = [2, 6, 8];
  it('interpolates linearly inside the bucket that holds the rank', () => {
    expect(histogramQuantile(0.1, BOUNDS, cum, 10)).toBeCloseTo(0.5, 12); // rank 1 of 2 in (0, 1]
    expect(histogramQuantile(0.2, BOUNDS, cum, 10)).toBeCloseTo(1, 12); // rank 2: top of the first bucket
    expect(histogramQuantile(0.5, BOUNDS, cum, 10)).toBeCloseTo(1.75, 12); // rank 5: 3 of 4 into (1, 2]
    expect(histogramQuantile(0.7, BOUNDS, cum, 10)).toBeCloseTo(3.5, 12); // rank 7: 1 of 2 into (2, 5]
  });
  it('answers the highest finite bound when the rank falls in +Inf, and null without observations', () => {
    expect(histogramQuantile(0.95, BOUNDS, cum, 10)).toBe(5);
    expect(histogramQuantile(0.5, BOUNDS, [0, 0, 0], 0)).toBeNull();
    expect(histogramQuantile(Number.NaN, BOUNDS, cum, 10)).toBeNull();
  });
});

function sample(at: number, c: number | undefined, h?: { buckets: number[]; count: number; sum: number }, g = 0): AccountingSample {
  return { at, gauges: { g }, counters: c === undefined ? undefined : { c }, histograms: h ? { h } : undefined };
}

describe('AccountingRing', () => {
  const layout = { gauges: ['g'], counters: ['c'], histograms: ['h'], bounds: BOUNDS };

  it('thins evenly once full: the interior point with the closest neighbours goes (older on ties)', () => {
    const ring = new AccountingRing(layout, { maxPoints: 5, horizonMs: 1_000_000 });
    for (let t = 0; t <= 7; t += 1) ring.push(sample(t * 1000, t, undefined, t));
    // 0..4 | +5: spans all 2, drop 1 -> 0,2,3,4,5 | +6: spans 3,2,2,2 -> drop 3 -> 0,2,4,5,6 | +7: spans 4,3,2,2 -> drop 5
    expect(ring.history().t).toEqual([0, 2, 4, 6, 7]);
    expect(ring.history().gauges.g).toEqual([0, 2, 4, 6, 7]);
  });

  it('keeps only the newest point older than the horizon', () => {
    const ring = new AccountingRing(layout, { maxPoints: 10, horizonMs: 10_000 });
    for (const t of [0, 3, 6, 9, 12, 15]) ring.push(sample(t * 1000, t));
    // Horizon starts at 5: 3 is the base of a full window, 0 is gone.
    expect(ring.history().t).toEqual([3, 6, 9, 12, 15]);
    expect(ring.window(10)!.seconds).toBe(12);
  });

  it('computes rates over the newest point at or before the window start', () => {
    const ring = new AccountingRing(layout, { maxPoints: 10, horizonMs: 900_000 });
    ring.push(sample(0, 0));
    ring.push(sample(10_000, 10));
    ring.push(sample(20_000, 30));
    const w15 = ring.window(15)!; // base t=0: 30 over 20 s
    expect(w15.seconds).toBe(20);
    expect(w15.increase('c')).toBe(30);
    expect(w15.rate('c')).toBeCloseTo(1.5, 12);
    const w10 = ring.window(10)!; // base t=10: 20 over 10 s
    expect(w10.seconds).toBe(10);
    expect(w10.rate('c')).toBeCloseTo(2, 12);
    // Asking for more than the history holds covers what there is.
    expect(ring.window(900)!.seconds).toBe(20);
    expect(ring.history().rates.c).toEqual([null, 1, 2]);
  });

  it('treats a counter that went down as reset, like Prometheus', () => {
    const ring = new AccountingRing(layout, { maxPoints: 10, horizonMs: 900_000 });
    ring.push(sample(0, 100));
    ring.push(sample(5000, 5));
    expect(ring.window(60)!.increase('c')).toBe(5);
  });

  it('takes quantiles of the observations made inside the window only', () => {
    const ring = new AccountingRing(layout, { maxPoints: 10, horizonMs: 900_000 });
    ring.push(sample(0, 0, { buckets: [1, 1, 1], count: 1, sum: 0.5 }));
    ring.push(sample(60_000, 9, { buckets: [2, 6, 8], count: 10, sum: 30 }));
    const w = ring.window(60)!;
    // Delta buckets [1, 5, 7], count 9: rank 4.5 lies 3.5 of 4 into (1, 2].
    expect(w.observations('h')).toBe(9);
    expect(w.quantile('h', 0.5)).toBeCloseTo(1.875, 12);
    expect(w.quantile('h', 0.99)).toBe(5);
  });

  it('has no window until two points carry accounting, and ignores points without it', () => {
    const ring = new AccountingRing(layout, { maxPoints: 10, horizonMs: 900_000 });
    ring.push(sample(0, undefined));
    ring.push(sample(10_000, undefined));
    expect(ring.window(60)).toBeNull();
    ring.push(sample(20_000, 4));
    expect(ring.window(60)).toBeNull();
    ring.push(sample(30_000, 10));
    const w = ring.window(60)!;
    expect(w.seconds).toBe(10);
    expect(w.increase('c')).toBe(6);
    expect(w.quantile('h', 0.5)).toBeNull();
  });

  it('stores an unchanged accounting once: an idle queue keeps one row however many points it has', () => {
    const ring = new AccountingRing(layout, { maxPoints: 8, horizonMs: 10_000_000 });
    const h = (count: number) => ({ buckets: [count, count, count], count, sum: count * 0.5 });
    const row = 1 + BOUNDS.length + 1; // the counter, then the buckets and the count
    for (let t = 0; t < 20; t += 1) ring.push(sample(t * 10_000, 7, h(3), t));
    expect(ring.size).toBe(8);
    expect(ring.accountingNumbers).toBe(row);
    // Traffic: older points keep only what moved, as [index, difference] pairs, and windows read across them.
    const busy = new AccountingRing(layout, { maxPoints: 100, horizonMs: 10_000_000 });
    for (let t = 0; t < 5; t += 1) busy.push(sample(t * 10_000, 7, h(3)));
    busy.push(sample(50_000, 9, h(5)));
    busy.push(sample(60_000, 9, h(5)));
    busy.push(sample(70_000, 12, h(5)));
    // 40 s -> 50 s: the counter and the two observations above 5 (the count's own bucket); 60 s -> 70 s: the counter.
    expect(busy.accountingNumbers).toBe(row + 4 + 2);
    const w = busy.window(30)!;
    expect(w.increase('c')).toBe(5); // 12 at 70 s minus 7 at 40 s
    expect(w.observations('h')).toBe(2);
    expect(busy.history().rates.c).toEqual([null, 0, 0, 0, 0, 0.2, 0, 0.3]);
    // A point without histograms is kept whole, even with equal counters.
    busy.push(sample(80_000, 12));
    expect(busy.accountingNumbers).toBe(2 * row + 4 + 2);
    expect(busy.window(10)!.observations('h')).toBe(0);
  });

  it('answers every window and history exactly as a ring keeping every sample whole (random traffic, resets, gaps, thinning)', () => {
    const bounds = [0.1, 1, 5, 30];
    const wide = { gauges: ['g', 'age', 'z'], counters: ['a', 'b'], histograms: ['w', 'p'], bounds };
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (const maxPoints of [3, 8, 64]) {
      const ring = new AccountingRing(wide, { maxPoints, horizonMs: 300_000 });
      const model = new WholeSamples(wide, { maxPoints, horizonMs: 300_000 });
      const totals = { a: 0, b: 0, w: new Array<number>(bounds.length + 1).fill(0), p: new Array<number>(bounds.length + 1).fill(0) };
      let at = 1_700_000_000_000;
      for (let step = 0; step < 400; step += 1) {
        at += Math.floor(rnd() * 9000);
        const roll = rnd();
        // Mostly small moves; sometimes none, a reset, a huge jump (past 2^50: kept whole), a fraction, or a gap.
        if (roll < 0.03) Object.assign(totals, { a: 0, b: 0, w: totals.w.map(() => 0), p: totals.p.map(() => 0) });
        else if (roll < 0.05) totals.a += 2 ** 51;
        else if (roll < 0.07) totals.b += 0.5;
        else if (roll > 0.3) {
          totals.a += Math.floor(rnd() * 4);
          totals.b += rnd() < 0.1 ? 3_000_000_000 : Math.floor(rnd() * 2);
          for (const h of [totals.w, totals.p]) if (rnd() < 0.6) h[Math.floor(rnd() * h.length)]! += 1 + Math.floor(rnd() * 3);
        }
        const cumulative = (per: number[]) => per.map((_, i) => per.slice(0, i + 1).reduce((x, y) => x + y, 0));
        const hist = (per: number[]) => {
          const c = cumulative(per);
          return { buckets: c.slice(0, bounds.length), count: c[bounds.length]!, sum: c[bounds.length]! * 0.37 };
        };
        const gap = rnd() < 0.04;
        const noHist = rnd() < 0.04;
        const s: AccountingSample = {
          at,
          // Gauges steady for stretches, then moving; -0 and NaN come back as pushed.
          gauges: {
            g: Math.floor(step / 37) % 3 === 0 ? 3 : step % 5,
            age: step % 150 < 90 ? 0 : rnd() * 100,
            z: step % 97 === 0 ? -0 : step % 89 === 0 ? NaN : 0,
          },
          counters: gap ? undefined : { a: totals.a, b: totals.b },
          histograms: gap ? undefined : noHist ? { w: hist(totals.w) } : { w: hist(totals.w), p: hist(totals.p) },
        };
        ring.push(s);
        model.push(s);
        expect(ring.history()).toEqual(model.history());
        for (const seconds of [5, 30, 60, 200, 900]) {
          const got = ring.window(seconds);
          const want = model.window(seconds);
          expect(got === null).toBe(want === null);
          if (!got || !want) continue;
          expect(got.seconds).toBe(want.seconds);
          for (const c of ['a', 'b']) expect([got.increase(c), got.rate(c)]).toEqual([want.increase(c), want.rate(c)]);
          for (const h of ['w', 'p']) {
            expect(got.observations(h)).toBe(want.observations(h));
            for (const q of [0.5, 0.95, 0.99]) expect(got.quantile(h, q)).toBe(want.quantile(h, q));
          }
        }
      }
    }
  });
});

describe('AccountingRing times shared between rings', () => {
  it('answers for each of many rings pushed the same collections, joining at different times, with other bounds and clock steps, as a ring of its own', () => {
    const layout = { gauges: ['g'], counters: ['c'], histograms: [], bounds: [] };
    let seed = 11;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const rings: Array<{ ring: AccountingRing; model: WholeSamples; c: number }> = [];
    let at = 1_700_000_000_000;
    for (let step = 0; step < 300; step += 1) {
      // Rings join now and then, two at once with other bounds; each pass pushes every ring the same time, in an
      // order that changes, and now and then one ring alone gets a time of its own (its history leaves the others').
      if (step % 23 === 0) {
        for (const opts of [
          { maxPoints: 8, horizonMs: 120_000 },
          { maxPoints: 5, horizonMs: 60_000 },
        ]) {
          rings.push({ ring: new AccountingRing(layout, opts), model: new WholeSamples(layout, { ...opts }), c: 0 });
        }
      }
      // Mostly forwards, sometimes a step backwards (ignored by every ring alike).
      at += rnd() < 0.05 ? -3000 : Math.floor(rnd() * 9000);
      const order = rings.map((_, i) => i).sort(() => rnd() - 0.5);
      const alone = rnd() < 0.1 ? order[0] : -1;
      for (const i of order) {
        const r = rings[i]!;
        r.c += Math.floor(rnd() * 3);
        const s: AccountingSample = { at: i === alone ? at - 1 : at, gauges: { g: r.c % 4 }, counters: { c: r.c } };
        r.ring.push(s);
        r.model.push(s);
      }
      for (const { ring, model } of rings) {
        expect(ring.history()).toEqual(model.history());
        for (const seconds of [10, 60, 900]) {
          const got = ring.window(seconds);
          const want = model.window(seconds);
          expect(got === null).toBe(want === null);
          if (got && want) expect([got.seconds, got.increase('c')]).toEqual([want.seconds, want.increase('c')]);
        }
      }
    }
  });
});

describe('PointColumns', () => {
  it('keeps a steady column once and a moving one per point, back to once when it is steady over every point held', () => {
    const cols = new PointColumns(3, 9);
    const held: number[][] = [];
    const push = (v: number[]) => {
      cols.push(v);
      held.push(v);
      if (held.length > 8) {
        const drop = v[0]! % 2000 === 0 ? 0 : 4; // the oldest, or one inside
        cols.remove(drop);
        held.splice(drop, 1);
      }
      expect(Array.from({ length: cols.size }, (_, i) => [0, 1, 2].map((c) => cols.get(i, c)))).toEqual(held);
    };
    for (let t = 0; t < 20; t += 1) push([t * 1000, 1, 7]);
    expect(cols.perPoint).toBe(1); // only the time moves
    push([20_000, 1, -0]);
    push([21_000, 1, 9.5]);
    expect(cols.perPoint).toBe(2);
    for (let t = 22; t < 60; t += 1) push([t * 1000, 1, 9.5]);
    // Every point held has 9.5 again (the burst has aged out): the column is kept once again.
    expect(cols.perPoint).toBe(1);
    push([60_000, Number.NaN, 9.5]);
    push([61_000, Number.NaN, 9.5]);
    expect(cols.perPoint).toBe(2);
  });
});

/**
 * The ring's contract written the plain way, as ground truth for its storage: every sample kept whole, the same
 * thinning (the interior point with the closest neighbours goes, the older on ties; past the horizon only the
 * newest older point stays), windows from the newest point at or before the start, quantiles of the differences.
 */
class WholeSamples {
  private kept: AccountingSample[] = [];

  constructor(
    private readonly layout: { gauges: string[]; counters: string[]; histograms: string[]; bounds: number[] },
    private readonly opts: { maxPoints: number; horizonMs: number },
  ) {}

  push(s: AccountingSample): void {
    const k = this.kept;
    if (k.length > 0 && s.at < k[k.length - 1]!.at) return;
    k.push(s);
    while (k.length > 2 && k[1]!.at <= s.at - this.opts.horizonMs) k.shift();
    if (k.length > this.opts.maxPoints) {
      let drop = 1;
      for (let i = 2; i < k.length - 1; i += 1) if (k[i + 1]!.at - k[i - 1]!.at < k[drop + 1]!.at - k[drop - 1]!.at) drop = i;
      k.splice(drop, 1);
    }
  }

  window(seconds: number) {
    const k = this.kept;
    const last = k[k.length - 1];
    if (k.length < 2 || !last?.counters) return null;
    let base: AccountingSample | undefined;
    for (let i = k.length - 2; i >= 0 && k[i]!.counters; i -= 1) {
      base = k[i];
      if (k[i]!.at <= last.at - seconds * 1000) break;
    }
    if (!base || base.at >= last.at) return null;
    const covered = (last.at - base.at) / 1000;
    const increase = (c: string) => {
      const now = last.counters![c]!;
      const then = base.counters![c]!;
      return now >= then ? now - then : now;
    };
    const delta = (h: string) => {
      const now = last.histograms?.[h];
      if (!now) return { buckets: [] as number[], count: 0 };
      const then = base.histograms?.[h];
      const reset = !then || now.count < then.count;
      const buckets = this.layout.bounds.map((_, b) => now.buckets[b]! - (reset ? 0 : then.buckets[b]!));
      return { buckets, count: now.count - (reset ? 0 : then.count) };
    };
    return {
      seconds: covered,
      increase,
      rate: (c: string) => increase(c) / covered,
      observations: (h: string) => delta(h).count,
      quantile: (h: string, q: number) => histogramQuantile(q, this.layout.bounds, delta(h).buckets, delta(h).count),
    };
  }

  history() {
    const k = this.kept;
    const gauges = Object.fromEntries(this.layout.gauges.map((g) => [g, k.map((s) => s.gauges[g] ?? 0)]));
    const rates = Object.fromEntries(
      this.layout.counters.map((c) => [
        c,
        k.map((s, i) => {
          const prev = k[i - 1];
          const dt = prev ? (s.at - prev.at) / 1000 : 0;
          if (!prev?.counters || !s.counters || !(dt > 0)) return null;
          const now = s.counters[c]!;
          const then = prev.counters[c]!;
          return (now >= then ? now - then : now) / dt;
        }),
      ]),
    );
    return { t: k.map((s) => s.at / 1000), gauges, rates };
  }
}

function state(name: string, over: Partial<QueueState> = {}, jobs: Partial<QueueState['jobs']> = {}): QueueState {
  const all = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as QueueState['jobs'];
  const dlqOf = name.endsWith('-dlq') ? name.slice(0, -4) : undefined;
  return {
    ref: { prefix: 'bull', name },
    dlqOf,
    jobs: { ...all, ...jobs },
    paused: false,
    oldestWaitingAgeSeconds: 0,
    delayedOverdue: 0,
    oldestActiveAgeSeconds: 0,
    orphanedActive: 0,
    workers: 1,
    rateLimited: false,
    ...over,
  };
}

describe('assessQueue', () => {
  const judge = (s: QueueState, extra: Partial<QueueHealthInput> = {}) =>
    assessQueue({ state: s, deadLetterJobs: 0, deadLetteredLast15m: null, last15m: null, ...extra });
  it('is critical with no workers and a backlog, naming the alert and its runbook', () => {
    const h = judge(state('email', { workers: 0 }, { waiting: 3 }));
    expect(h.status).toBe('critical');
    expect(h.rank).toBe(2);
    expect(h.reasons[0]).toMatchObject({ code: 'no_workers', alert: 'BullMQNoWorkers', runbook: '/runbooks/BullMQNoWorkers.md' });
    expect(h.reasons[0]!.message).toBe('3 job(s) waiting and no worker connected');
  });
  it('does not flag a paused queue, a dead-letter queue, or unknown worker counts for missing workers', () => {
    expect(judge(state('a', { workers: 0, paused: true }, { waiting: 3 })).status).toBe('ok');
    expect(judge(state('a-dlq', { workers: 0 }, { waiting: 3 })).status).toBe('ok');
    expect(judge(state('a', { workers: undefined }, { waiting: 3 })).status).toBe('ok');
  });
  it('uses the per-queue oldest-age limit (exports get 30 min)', () => {
    expect(judge(state('email', { oldestWaitingAgeSeconds: 301 }, { waiting: 1 })).reasons.map((r) => r.code)).toEqual(['oldest_job_too_old']);
    expect(judge(state('export', { oldestWaitingAgeSeconds: 301 }, { waiting: 1 })).status).toBe('ok');
  });
  it('warns on orphans and dead letters, and only informs about pause', () => {
    const h = judge(state('email', { orphanedActive: 2, paused: true }), { deadLetterJobs: 4 });
    expect(h.status).toBe('warning');
    expect(h.reasons.map((r) => [r.code, r.severity])).toEqual([
      ['orphaned_active', 'warning'],
      ['dead_letters', 'warning'],
      ['paused', 'info'],
    ]);
  });
  it('says a dead-letter queue is growing, rather than merely not empty, when more jobs than the alert allows arrived in the window', () => {
    const h = judge(state('email'), { deadLetterJobs: 7, deadLetteredLast15m: 6 });
    expect(h.reasons.map((r) => [r.code, r.alert, r.message])).toEqual([
      ['dead_letters_growing', 'BullMQDeadLetterQueueGrowing', '6 job(s) dead-lettered in the last 15 min; 7 in email-dlq'],
    ]);
    // Two dead letters are not a trend (dlqGrowing.maxAdded = 5): the queue is only not empty.
    expect(judge(state('email'), { deadLetterJobs: 7, deadLetteredLast15m: 2 }).reasons.map((r) => r.code)).toEqual(['dead_letters']);
  });
  it('judges the failure ratio only once enough jobs finished in the window', () => {
    const w = (completed: number, failed: number) => ({
      seconds: 100,
      rates: { added: 0, completed: completed / 100, failed: failed / 100, retried: 0, stalled: 0 },
      failureRatio: failed / (completed + failed),
      wait: { count: 0, p50: null, p95: null, p99: null },
      processing: { count: 0, p50: null, p95: null, p99: null },
    });
    expect(judge(state('email'), { last15m: w(5, 5) }).status).toBe('ok'); // 10 finished < 20
    const bad = judge(state('email'), { last15m: w(15, 5) }); // 25% of 20
    expect(bad.reasons[0]).toMatchObject({ code: 'high_failure_rate', message: '25.0% of finished jobs failed in the last 1m 40s (limit 10%)' });
  });
  it('formats ages for people', () => {
    expect([formatAge(0.25), formatAge(4.25), formatAge(42.4), formatAge(200), formatAge(7500)]).toEqual(['250 ms', '4.3 s', '42 s', '3m 20s', '2h 05m']);
  });
});

describe('QueueBoard', () => {
  const snap = (at: number, queues: QueueState[], ok = true): CollectionSnapshot => ({
    seq: at,
    ok,
    error: ok ? undefined : 'Redis is unreachable',
    finishedAt: at,
    durationSeconds: 0.001,
    lastSuccessAt: ok ? at : 0,
    redisUp: ok,
    queues: ok ? queues : [],
    queuesByPrefix: { bull: queues.length },
    queuesDropped: 0,
  });
  const acc = (added: number, completed: number, failed: number, waitCum: number[], waitCount: number): BoardAccounting => ({
    counters: { added, completed, failed, retried: 0, stalled: 0 },
    wait: { buckets: waitCum, count: waitCount, sum: 0 },
    processing: { buckets: [0, 0, 0], count: 0, sum: 0 },
  });

  it('joins dead-letter depth, windows and health, and sorts the worst queue first', async () => {
    const board = new QueueBoard({ collectIntervalSeconds: 5, histogramBounds: BOUNDS });
    const queues = [
      state('email', {}, { waiting: 1 }),
      state('email-dlq', { workers: 0 }, { waiting: 2, failed: 1, completed: 7 }),
      state('stuck', { workers: 0 }, { waiting: 4 }),
    ];
    const id = 'bull\u0000email';
    const dlqId = 'bull\u0000email-dlq';
    await board.update(
      snap(1_000_000, queues),
      new Map([
        [id, acc(0, 0, 0, [0, 0, 0], 0)],
        [dlqId, acc(1, 0, 0, [0, 0, 0], 0)],
      ]),
    );
    await board.update(
      snap(1_060_000, queues),
      new Map([
        [id, acc(120, 90, 10, [50, 80, 90], 100)],
        [dlqId, acc(7, 0, 0, [0, 0, 0], 0)],
      ]),
    );
    const res = board.response({ now: 1_061_000, history: true });
    expect(res.collection).toMatchObject({ ok: true, ageSeconds: 1, intervalSeconds: 5 });
    expect(res.accountingAvailable).toBe(true);
    expect(res.queues.map((q) => q.name)).toEqual(['stuck', 'email', 'email-dlq']);
    const email = res.queues[1]!;
    // 7 - 1 = 6 jobs reached email-dlq in the window: more than dlqGrowing.maxAdded.
    expect(email.deadLetter).toEqual({ queue: 'email-dlq', jobs: 3, oldestAgeSeconds: 0, addedLast15m: 6 });
    expect(email.health.reasons.map((r) => r.code)).toEqual(['dead_letters_growing']);
    const w = email.windows['1m']!;
    expect(w.seconds).toBe(60);
    expect(w.rates.added).toBeCloseTo(2, 12);
    expect(w.failureRatio).toBeCloseTo(0.1, 12);
    // wait: 100 obs, 50 <= 1 s, 30 in (1, 2]: p50 = rank 50 = 1 s; p95 = rank 95 in +Inf -> 5.
    expect(w.wait).toEqual({ count: 100, p50: 1, p95: 5, p99: 5 });
    expect(email.history!.addedPerSecond).toEqual([null, 2]);
    expect(email.history!.deadLetterJobs).toEqual([3, 3]);
    const stuck = res.queues[0]!;
    expect(stuck.windows).toEqual({ '1m': null, '15m': null });
    expect(stuck.history!.addedPerSecond).toEqual([null, null]);
  });

  it('shows no queues while collection fails, then resumes with the history it had', async () => {
    const board = new QueueBoard({ collectIntervalSeconds: 5, histogramBounds: BOUNDS });
    await board.update(snap(1000, [state('a')]));
    await board.update(snap(2000, [], false));
    const down = board.response({ now: 2000 });
    expect(down.queues).toEqual([]);
    expect(down.collection).toMatchObject({ ok: false, error: 'Redis is unreachable', collectedAt: null });
    await board.update(snap(3000, [state('a')]));
    expect(board.response({ now: 3000, history: true }).queues[0]!.history!.t).toEqual([1, 3]);
    // Nothing finished for more than 3 intervals (a hanging collection): the last values are not shown as current.
    const hung = board.response({ now: 3000 + 15_001 });
    expect(hung.queues).toEqual([]);
    expect(hung.collection).toMatchObject({ ok: false, error: 'no collection finished in the last 15 s; Redis may be stalled' });
  });
  it('answers, for a queue quiet for longer than its ring holds and then busy, and for one that left and came back, what rings fed every sample give', async () => {
    const board = new QueueBoard({ collectIntervalSeconds: 1, histogramBounds: BOUNDS });
    // The reference: one ring per queue fed each sample directly, the one that left started again on its return.
    const rings = new Map<string, AccountingRing>();
    const ring = () =>
      new AccountingRing(
        {
          gauges: ['backlog', 'active', 'delayed', 'oldestWaitingAgeSeconds', 'deadLetterJobs'],
          counters: ['added', 'completed', 'failed', 'retried', 'stalled'],
          histograms: ['wait', 'processing'],
          bounds: BOUNDS,
        },
        { maxPoints: 64, horizonMs: 900_000 },
      );
    const refs = new Map(['quiet', 'busy', 'gone'].map((n) => [n, { prefix: 'bull', name: n }]));
    const quietAcc = acc(5, 5, 0, [5, 5, 5], 5);
    for (let k = 1; k <= 140; k += 1) {
      const at = 1_000_000 + k * 1000;
      const names = k > 50 && k <= 80 ? ['quiet', 'busy'] : ['quiet', 'busy', 'gone'];
      const queues = names.map((n) => ({ ...state(n, {}, { waiting: n === 'busy' ? k : 3 }), ref: refs.get(n)!, oldestWaitingAgeSeconds: k / 2 }));
      const accounting = new Map<string, BoardAccounting>();
      for (const n of names) {
        // quiet: the same object for 120 collections, then a completion per collection.
        const a =
          n === 'quiet' ? (k <= 120 ? quietAcc : acc(5 + k - 120, 5 + k - 120, 0, [5, 5 + k - 120, 5 + k - 120], 5 + k - 120)) : acc(k, k, k % 3, [k, k, k], k);
        accounting.set(`bull\u0000${n}`, a);
      }
      await board.update(snap(at, queues), accounting);
      for (const q of queues) {
        const n = q.ref.name;
        if (!names.includes('gone')) rings.delete('gone');
        if (!rings.has(n)) rings.set(n, ring());
        const a = accounting.get(`bull\u0000${n}`)!;
        rings.get(n)!.push({
          at,
          gauges: { backlog: q.jobs.waiting, active: 0, delayed: 0, oldestWaitingAgeSeconds: q.oldestWaitingAgeSeconds, deadLetterJobs: 0 },
          counters: a.counters,
          histograms: { wait: a.wait, processing: a.processing },
        });
      }
    }
    const views = board.response({ now: 1_140_000, history: true }).queues;
    expect(views.map((v) => v.name).sort()).toEqual(['busy', 'gone', 'quiet']);
    for (const v of views) {
      const r = rings.get(v.name)!;
      const h = r.history();
      expect(v.history!.t).toEqual(h.t);
      expect(v.history!.backlog).toEqual(h.gauges.backlog);
      expect(v.history!.oldestWaitingAgeSeconds).toEqual(h.gauges.oldestWaitingAgeSeconds);
      expect(v.history!.addedPerSecond).toEqual(h.rates.added);
      for (const [name, secs] of [
        ['1m', 60],
        ['15m', 900],
      ] as const) {
        const w = r.window(secs)!;
        expect(v.windows[name]!.seconds).toBe(w.seconds);
        expect(v.windows[name]!.rates.completed).toBe(w.rate('completed'));
        expect(v.windows[name]!.wait.p50).toBe(w.quantile('wait', 0.5));
      }
    }
    // By hand: quiet completed 20 in its last 20 s, nothing before; gone's history starts at its return (k = 81).
    const quiet = views.find((v) => v.name === 'quiet')!;
    expect(quiet.windows['1m']!.rates.completed).toBeCloseTo(20 / quiet.windows['1m']!.seconds, 12);
    expect(views.find((v) => v.name === 'gone')!.history!.t[0]).toBe(1081);
  });
});

describe('QueueBoard.responseJson (what /api/queues sends)', () => {
  const snapOf = (at: number, names: string[]): CollectionSnapshot => ({
    seq: at,
    ok: true,
    finishedAt: at,
    durationSeconds: 0.001,
    lastSuccessAt: at,
    redisUp: true,
    queues: names.map((n, i) => state(n, { oldestWaitingAgeSeconds: i % 7 }, { waiting: i % 5 })),
    queuesByPrefix: { bull: names.length },
    queuesDropped: 0,
  });
  const names = Array.from({ length: 300 }, (_, i) => `q${i}`);
  const accounting = (added: number) =>
    new Map(
      names.map((n) => [
        `bull\u0000${n}`,
        {
          counters: { added, completed: added, failed: 0, retried: 0, stalled: 0 },
          wait: { buckets: [added, added, added], count: added, sum: added },
          processing: { buckets: [0, 0, 0], count: 0, sum: 0 },
        },
      ]),
    );

  it('is the same document as response(), with and without history, and for a stale board', async () => {
    const board = new QueueBoard({ collectIntervalSeconds: 5, histogramBounds: BOUNDS });
    await board.update(snapOf(1_000_000, names), accounting(0));
    await board.update(snapOf(1_030_000, names), accounting(30));
    for (const history of [false, true]) {
      const opts = { now: 1_031_000, history, intervalSeconds: 5 };
      expect(JSON.parse(await board.responseJson(opts))).toEqual(JSON.parse(JSON.stringify(board.response(opts))));
    }
    const stale = { now: 1_030_000 + 60_000 };
    expect(JSON.parse(await board.responseJson(stale))).toEqual(JSON.parse(JSON.stringify(board.response(stale))));
  });

  it('builds the queue views in slices, so other callbacks run meanwhile, and once per collection', async () => {
    const board = new QueueBoard({ collectIntervalSeconds: 5, histogramBounds: BOUNDS, sliceMs: 0 });
    await board.update(snapOf(1_000_000, names), accounting(0));
    let done = false;
    let ranBefore = false;
    const json = board.responseJson({ now: 1_000_500 }).then((t) => ((done = true), t));
    setImmediate(() => (ranBefore = !done));
    const [a, b] = await Promise.all([json, board.responseJson({ now: 1_000_500 })]);
    expect(ranBefore).toBe(true);
    expect(a).toBe(b);
    expect(JSON.parse(a).queues).toHaveLength(names.length);
  });
});

describe('boardAccounting', () => {
  it('folds an unchanged queue once: the same stats arrays give the same totals, new ones are folded again', () => {
    const acc = new EventAccounting();
    acc.count('added', 'a');
    acc.observe('wait', 'first', 'a', 30);
    const stats = acc.toStats();
    const queue = { prefix: 'bull', name: 'q' };
    const first = boardAccounting([{ queue, stats }]).get('bull\u0000q')!;
    // The read-back hands out an unchanged queue's arrays again with only its lag aged (a new stats object).
    const aged = { ...stats, reader: { ...stats.reader, lagSeconds: 3 } };
    expect(boardAccounting([{ queue, stats: aged }]).get('bull\u0000q')).toBe(first);
    acc.count('added', 'a');
    const moved = boardAccounting([{ queue, stats: acc.toStats() }]).get('bull\u0000q')!;
    expect(moved).not.toBe(first);
    expect(moved.counters.added).toBe(2);
    expect(first.counters.added).toBe(1);
  });

  it('hands every queue whose totals are all zeros one shared object, equal to its own fold', () => {
    const idle = new EventAccounting();
    idle.reader('read', 3); // read entries of no job, and a deduplication: no board number moves
    idle.count('deduplicated', 'a');
    const other = new EventAccounting();
    other.reader('unmatched');
    const busy = new EventAccounting();
    busy.count('stalled', 'a');
    const got = boardAccounting([
      { queue: { prefix: 'bull', name: 'idle' }, stats: idle.toStats() },
      { queue: { prefix: 'bull', name: 'other' }, stats: other.toStats() },
      { queue: { prefix: 'bull', name: 'busy' }, stats: busy.toStats() },
    ]);
    const zeros = { buckets: EVENT_BUCKETS_SECONDS.map(() => 0), count: 0, sum: 0 };
    const a = got.get('bull\u0000idle')!;
    expect({
      ...a,
      wait: { ...a.wait, buckets: Array.from(a.wait.buckets) },
      processing: { ...a.processing, buckets: Array.from(a.processing.buckets) },
    }).toEqual({
      counters: { added: 0, completed: 0, failed: 0, retried: 0, stalled: 0 },
      wait: zeros,
      processing: zeros,
    });
    expect(got.get('bull\u0000other')).toBe(a);
    expect(Object.isFrozen(a) && Object.isFrozen(a.counters) && Object.isFrozen(a.wait.buckets)).toBe(true);
    expect(got.get('bull\u0000busy')).not.toBe(a);
    expect(got.get('bull\u0000busy')!.counters.stalled).toBe(1);
  });

  it('sums counters and histograms over job names, attempts and outcomes', () => {
    const acc = new EventAccounting();
    acc.count('added', 'a');
    acc.count('added', 'b');
    acc.count('completed', 'a');
    acc.count('failed', 'b');
    acc.count('deduplicated', 'a'); // not a board counter
    acc.observe('wait', 'first', 'a', 30); // (0.025, 0.05]: bucket 3
    acc.observe('wait', 'retry', 'b', 3000); // (2.5, 5]: bucket 9
    acc.observe('processing', 'completed', 'a', 120); // (0.1, 0.25]: bucket 5
    const board = boardAccounting([{ queue: { prefix: 'bull', name: 'q' }, stats: acc.toStats() }]).get('bull\u0000q')!;
    expect(board.counters).toEqual({ added: 2, completed: 1, failed: 1, retried: 0, stalled: 0 });
    expect(board.wait.count).toBe(2);
    expect(board.wait.sum).toBeCloseTo(3.03, 9);
    expect(Array.from(board.wait.buckets)).toEqual(EVENT_BUCKETS_SECONDS.map((_, i) => (i < 3 ? 0 : i < 9 ? 1 : 2)));
    expect(board.processing.count).toBe(1);
    expect(Array.from(board.processing.buckets)).toEqual(EVENT_BUCKETS_SECONDS.map((_, i) => (i < 5 ? 0 : 1)));
  });
});
