// Adversary (session 25): Exposition after 9d18f01 (the body written at invalidate(); a scrape answered from the first
// body under way at the version it requires, not the latest). Random interleavings of cycle ends (a prom-client value
// changed, invalidate()), collections published (plain and urgent) and scrapes of every format, with and without
// gzip, none awaited before the next step. Ground truth: the values set and the collections published, in order.
// Each body must be whole (every queue's line, all from one collection), never older than what its scrape had to
// wait for (the value set before the last invalidate(), the last urgent publish, a publish already resolved), and
// per format never older than a body already returned before the scrape began.
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { METRICS } from '../src/metrics/definitions.js';
import { FragmentSet, FragmentWriter, type FamilySpec } from '../src/metrics/exposition-fragments.js';
import { Exposition, type ExpositionFormat } from '../src/metrics/exposition.js';
import { renderLabels } from '../src/metrics/exposition-text.js';
import { parsePromText, seriesKey, type Series } from './helpers/prom-text.js';
import { protobufSeries } from './helpers/protobuf-series.js';

const FAMILIES: FamilySpec[] = [{ name: 'bullmq_queue_jobs', help: 'Jobs.', type: 'gauge' }];
const QUEUES = 400;
const FORMATS: ExpositionFormat[] = ['text', 'openmetrics', 'protobuf'];
const CYCLE = METRICS.exporterCycleDuration.name;

function collection(jobs: number): FragmentSet {
  const w = new FragmentWriter(FAMILIES.length);
  const fragments = Array.from({ length: QUEUES }, (_, k) => {
    const q = `q${k}`;
    w.sample(0, FAMILIES[0]!, renderLabels(['queue'], [q]), [['queue', q]], jobs);
    return w.finish(`fp${k}-${jobs}`);
  });
  return new FragmentSet(FAMILIES, fragments);
}

/** The body's cycle value and its one collection number (undefined: not whole, or two collections in one body). */
function read(format: ExpositionFormat, body: Buffer, gzip: boolean): { cycle: number | undefined; jobs: number | undefined } {
  const raw = gzip ? gunzipSync(body) : body;
  const s: Series = format === 'protobuf' ? protobufSeries(raw) : parsePromText(raw.toString());
  const values = new Set<number>();
  let lines = 0;
  for (let k = 0; k < QUEUES; k += 1) {
    const v = s.get(seriesKey('bullmq_queue_jobs', { queue: `q${k}` }));
    if (v === undefined) continue;
    lines += 1;
    values.add(v);
  }
  return { cycle: s.get(CYCLE), jobs: lines === QUEUES && values.size === 1 ? [...values][0] : undefined };
}

describe('adversary s25: bodies under interleaved invalidate, publish and scrapes', () => {
  it('every body whole, never older than its scrape required nor than one returned before it began', async () => {
    let seed = 17;
    const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    for (let round = 0; round < 6; round += 1) {
      const e = new Exposition(60_000);
      const gauge = e.gauge(METRICS.exporterCycleDuration);
      let cycle = 1;
      let jobs = 1;
      gauge.set(cycle);
      await e.publish('collection', collection(jobs));
      // What a scrape starting now must see at least: per step, updated as the steps are made.
      const floor = { cycle, jobs };
      // Per format: the newest body returned so far (a scrape starting after it must not see older).
      const returned = new Map<ExpositionFormat, { cycle: number; jobs: number }>();
      const pending: Array<Promise<unknown>> = [];
      const problems: string[] = [];
      for (let step = 0; step < 120; step += 1) {
        const r = random();
        if (r < 0.2) {
          gauge.set(++cycle);
          e.invalidate();
          floor.cycle = cycle;
        } else if (r < 0.35) {
          const n = ++jobs;
          const urgent = random() < 0.3;
          const done = e.publish('collection', collection(n), urgent);
          if (urgent) floor.jobs = n;
          pending.push(done.then(() => (floor.jobs = Math.max(floor.jobs, n))));
        } else {
          const format = FORMATS[Math.floor(random() * 3)]!;
          const gzip = random() < 0.5;
          const need = { ...floor };
          const before = returned.get(format) ?? { cycle: 0, jobs: 0 };
          pending.push(
            e.render(format, gzip).then((m) => {
              const got = read(format, m.body, gzip);
              const tag = `round ${round} step ${step} ${format}${gzip ? '+gzip' : ''}`;
              if (got.jobs === undefined || got.cycle === undefined) problems.push(`${tag}: not whole`);
              else {
                if (got.cycle < need.cycle || got.jobs < need.jobs) problems.push(`${tag}: ${JSON.stringify(got)} older than required ${JSON.stringify(need)}`);
                if (got.cycle < before.cycle || got.jobs < before.jobs)
                  problems.push(`${tag}: ${JSON.stringify(got)} older than returned before ${JSON.stringify(before)}`);
                const last = returned.get(format) ?? { cycle: 0, jobs: 0 };
                returned.set(format, { cycle: Math.max(last.cycle, got.cycle), jobs: Math.max(last.jobs, got.jobs) });
              }
            }),
          );
        }
        // Sometimes the next step comes at once, sometimes after the event loop turned or a body was written.
        const wait = random();
        if (wait < 0.3) await new Promise((res) => setImmediate(res));
        else if (wait < 0.4) await pending.at(-1);
      }
      await Promise.all(pending);
      expect(problems).toEqual([]);
      // At rest every format's body is the last collection with the last cycle value.
      for (const format of FORMATS) {
        for (const gzip of [false, true]) expect(read(format, (await e.render(format, gzip)).body, gzip)).toEqual({ cycle, jobs });
      }
    }
  }, 120_000);
});
