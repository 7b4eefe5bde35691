// Adversary (session 24): the busy-queue pace timed before predicted looks (collector/demand-pace.ts) against scrape
// patterns its tests did not make. Ground truth: the looks the test makes on a clock it drives and the reads the real
// ChangePlan makes of a busy queue (test/helpers/pace-model.ts).
import { describe, expect, it } from 'vitest';
import { LEAD_MS } from '../src/collector/demand-pace.js';
import { agesAtLooks, every, MAX, PASS_MS, VISIBLE_MS } from './helpers/pace-model.js';

describe('adversary s24: busy queues refreshed before predicted looks', () => {
  it('a steady 15 s scraper finds each busy queue read LEAD_MS before each scrape (what holds)', () => {
    for (const age of agesAtLooks(every(15_000, 300_000), 60_000)) expect(age).toBe(LEAD_MS);
  });

  it('one scrape 1.5 s late does not leave the next one with data a whole period old', () => {
    // Before the fix: the late look set the period to 15.75 s and the next on-time look came 0.25 s before its
    // refresh point, finding the queue read 13.5 s before it; the half-gap rule bounds it by MAX (+ a pass).
    const looks = every(15_000, 300_000, (t) => (t === 120_000 ? 121_500 : t));
    const ages = agesAtLooks(looks, 60_000);
    for (const age of ages) expect(age).toBeLessThanOrEqual(MAX + VISIBLE_MS + PASS_MS);
    expect(ages.filter((a) => a === LEAD_MS).length).toBeGreaterThanOrEqual(ages.length - 4);
  });

  it('a scraper alternating 13.5 s and 16.5 s gaps (within 20% of 15 s) is not taken as recurring', () => {
    // Before the fix: predicted at 15 s, a look 1.5 s early missed its refresh and found data 13.5 s old.
    const looks: number[] = [];
    for (let t = 0, i = 0; t <= 300_000; t += i % 2 === 0 ? 13_500 : 16_500, i += 1) looks.push(t);
    for (const age of agesAtLooks(looks, 60_000)) expect(age).toBeLessThanOrEqual(MAX + VISIBLE_MS + PASS_MS);
  });
  it('a 15 s scraper that misses one scrape in four is not fitted as two phases 45 s apart', () => {
    // Before two phases were fitted from every kept look: 0, 15, 30, (45 missed), 60, 75 fitted an HA pair with a 45 s
    // period (only the last two differences were checked), and the scrape at 90 found the queue read 15 s before it.
    const looks = every(15_000, 300_000).filter((t) => (t / 15_000) % 4 !== 3);
    for (const age of agesAtLooks(looks, 60_000)) expect(age).toBeLessThanOrEqual(MAX + VISIBLE_MS + PASS_MS);
  });

  it('two Prometheus 15 s apart in phase by 2.5 and 7.5 s: LEAD_MS before each look (what holds)', () => {
    for (const phases of [
      [0, 2500],
      [0, 7500],
    ]) {
      const looks = every(15_000, 300_000)
        .flatMap((t) => phases.map((p) => t + p))
        .sort((a, b) => a - b);
      const ages = agesAtLooks(looks, 90_000);
      for (const age of ages) expect(age).toBeLessThanOrEqual(LEAD_MS);
    }
  });

  // Was a FINDING (minor): three Prometheus every 15 s at phases 0/4/9 s make gaps 4, 5, 6 s; one phase was fitted
  // from the last two gaps when two neighbours are within 500 ms (4 and 4.5 s, 5 and 6 s: period 4.5 or 5.5 s), so the
  // refresh was timed for a look that does not come and two of every three scrapes found the queue read 3.5 and 4 s
  // before them instead of LEAD_MS (with reads visible 1 s after they are made). Fixed: every kept look is fitted
  // first, the best of one to three phases; the last two gaps only when none fits.
  it('three Prometheus at phases 0/4/9 s find data LEAD_MS old', () => {
    const looks = every(15_000, 300_000)
      .flatMap((t) => [t, t + 4000, t + 9000])
      .sort((a, b) => a - b);
    for (const age of agesAtLooks(looks, 90_000)) expect(age).toBeLessThanOrEqual(LEAD_MS);
  });

  it('two and three Prometheus at other phases, every 10, 30 and 60 s: LEAD_MS before each look', () => {
    // Before every kept look was fitted for one phase, 0/3/6 s every 10 s fitted two phases every 6.5 s (the
    // differences two apart, 6 and 7 s, within 500 ms of their mean) and 0/10/21 s every 30 s one every 10.5 s.
    const cases: Array<[number, number[]]> = [
      [10_000, [0, 4000]],
      [10_000, [0, 3000, 6000]],
      [30_000, [0, 10_000]],
      [30_000, [0, 10_000, 21_000]],
      [30_000, [0, 2500, 17_500]],
      [60_000, [0, 25_000]],
      [60_000, [0, 20_000, 45_000]],
    ];
    for (const [periodMs, phases] of cases) {
      const looks = every(periodMs, 40 * periodMs)
        .flatMap((t) => phases.map((p) => t + p))
        .sort((a, b) => a - b);
      const ages = agesAtLooks(looks, 3 * periodMs);
      expect({ periodMs, phases, ages }).toEqual({ periodMs, phases, ages: ages.map(() => LEAD_MS) });
    }
  });

  it("one scraper's period changing: within 2 × MAX while it changes, LEAD_MS before each look from the third one after", () => {
    // A look earlier than predicted (the period shortened) finds the queue read a period before it, at most 2 × MAX
    // (the cap while looks recur; 12 s for 15 → 10 s); a later one falls back to half the gap; then the last two
    // gaps fit the new period.
    for (const [fromMs, toMs] of [
      [15_000, 10_000],
      [15_000, 30_000],
      [10_000, 60_000],
      [60_000, 15_000],
    ] as Array<[number, number]>) {
      const changeAt = 20 * fromMs;
      const looks = [
        ...every(fromMs, changeAt),
        ...every(toMs, 20 * toMs)
          .map((t) => changeAt + t)
          .slice(1),
      ];
      const ages = agesAtLooks(looks, 5 * fromMs);
      const at = looks.filter((l) => l >= 5 * fromMs);
      for (const age of ages) expect(age).toBeLessThanOrEqual(2 * MAX + VISIBLE_MS + PASS_MS);
      const settled = ages.filter((_, i) => (at[i] as number) < changeAt || (at[i] as number) >= changeAt + 3 * toMs);
      expect({ fromMs, toMs, settled }).toEqual({ fromMs, toMs, settled: settled.map(() => LEAD_MS) });
    }
  });

  it('a 15 s scraper with ±2.5 s jitter: a look rarely finds data older than MAX (while a fit is shaky)', () => {
    // Before: a fit from the last two gaps (within 500 ms of each other by chance), or a fit the next look came 2 s
    // early for, left the refresh timed for a look that came before it: 19 of 197 looks found the queue read 13-16 s
    // before them (within the 2 × MAX cap). A fit from the last two gaps only, or after an early look, now also reads
    // at least every MAX.
    let seed = 7;
    const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    const looks: number[] = [];
    for (let t = 0; t <= 3_000_000; t += 15_000) looks.push(Math.max((looks.at(-1) ?? -1000) + 250, t + Math.round(((random() * 2 - 1) * 2500) / 250) * 250));
    const ages = agesAtLooks(looks, 60_000);
    expect(ages.length).toBe(197);
    expect(ages.filter((a) => a > MAX + VISIBLE_MS + PASS_MS).length).toBeLessThanOrEqual(4);
  });
});
