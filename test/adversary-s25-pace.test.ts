// Adversary (session 25): the busy-queue pace (collector/demand-pace.ts, after 978f599: every kept look fitted, reads at
// least every max while a fit is shaky) against scrape patterns its tests and s24's did not make: Prometheus at
// periods that are not multiples of one another, a scraper that stops while another goes on, a curl between
// scrapes, a long period with a curl. Ground truth: the looks made on a clock the test drives and the reads the real
// ChangePlan makes of a busy queue (test/helpers/pace-model.ts). The documented bound: reads at most 2 × max apart
// while looks recur, else max; a look finds the queue read at most that (+ the read's visibility and a pass) before it.
import { describe, expect, it } from 'vitest';
import { LEAD_MS } from '../src/collector/demand-pace.js';
import { agesAtLooks, every, MAX, PASS_MS, VISIBLE_MS } from './helpers/pace-model.js';

const BOUND = 2 * MAX + VISIBLE_MS + PASS_MS;
const merged = (...lists: number[][]): number[] => [...new Set(lists.flat())].sort((a, b) => a - b);
const random = (seed: number) => () => (seed = (seed * 48271) % 2147483647) / 2147483647;
const q250 = (ms: number) => Math.round(ms / 250) * 250;

describe('adversary s25: busy-queue pace against mixed scrapers', () => {
  it('two Prometheus at different periods (15 s and 10 s, 15 s and 60 s, 20 s and 45 s): every look within the bound', () => {
    for (const [a, b, phase] of [
      [15_000, 10_000, 2500],
      [15_000, 60_000, 7250],
      [20_000, 45_000, 3000],
      [15_000, 16_000, 500],
    ] as Array<[number, number, number]>) {
      const looks = merged(
        every(a, 1_800_000),
        every(b, 1_800_000).map((t) => t + phase),
      );
      const ages = agesAtLooks(looks, 120_000);
      expect({ a, b, over: ages.filter((x) => x > BOUND) }).toEqual({ a, b, over: [] });
    }
  });

  it('an HA pair at 15 s, one stops: the other finds data LEAD_MS old again from its fourth look after (what holds)', () => {
    const stopAt = 600_000;
    const looks = merged(
      every(15_000, 1_200_000),
      every(15_000, stopAt).map((t) => t + 6000),
    );
    const ages = agesAtLooks(looks, 120_000);
    const at = looks.filter((l) => l >= 120_000);
    for (const age of ages) expect(age).toBeLessThanOrEqual(BOUND);
    const settled = ages.filter((_, i) => at[i]! < stopAt || at[i]! >= stopAt + 4 * 15_000);
    expect(settled).toEqual(settled.map(() => LEAD_MS));
  });

  it('a 15 s Prometheus and a curl at a random time in 1 of 3 gaps: no look (the curl included) beyond the bound', () => {
    const rnd = random(11);
    const prom = every(15_000, 3_000_000);
    const curls = prom.filter(() => rnd() < 1 / 3).map((t) => t + q250(1000 + rnd() * 13_000));
    const looks = merged(prom, curls);
    const ages = agesAtLooks(looks, 60_000);
    const over = ages.filter((x) => x > BOUND);
    expect(over).toEqual([]);
    // The Prometheus looks themselves: within max (+ visibility, a pass) but for a few, the curl breaking the fit.
    const promAges = ages.filter((_, i) => prom.includes(looks.filter((l) => l >= 60_000)[i]!));
    expect(promAges.filter((x) => x > MAX + VISIBLE_MS + PASS_MS).length).toBeLessThanOrEqual(promAges.length / 20);
  });

  it('a 60 s Prometheus and a curl now and then: reads at most 2 × max apart, so the curl finds data within the bound', () => {
    const rnd = random(5);
    const prom = every(60_000, 6_000_000);
    const curls = prom.filter(() => rnd() < 0.25).map((t) => t + q250(2000 + rnd() * 56_000));
    const looks = merged(prom, curls);
    const ages = agesAtLooks(looks, 240_000);
    expect(ages.filter((x) => x > BOUND)).toEqual([]);
  });

  it('three Prometheus at 15 s with ±1 s jitter each: within the bound, mostly LEAD_MS', () => {
    const rnd = random(3);
    const looks = merged(...[0, 5250, 9500].map((phase) => every(15_000, 3_000_000).map((t) => Math.max(0, t + phase + q250((rnd() * 2 - 1) * 1000)))));
    const ages = agesAtLooks(looks, 120_000);
    expect(ages.filter((x) => x > BOUND)).toEqual([]);
  });
});
