// A prom-client value changed between collections (the cycle's duration at each cycle's end, the leader flag):
// Exposition.invalidate() has no scrape served a body without it, and writes that body at once. A scrape that comes
// after the next collection was published (a collection every ~0.5 s with traffic, a scrape every 15 s) is answered
// from it, not made to wait for that collection's body (16.6 MB written and gzipped at 10,000 queues): that wait was
// 45-600 ms of a burst of 50 scrapes (docs/benchmarks.md). Ground truth: the values set and the fragments published.
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { METRICS } from '../src/metrics/definitions.js';
import { FragmentSet, FragmentWriter, type FamilySpec } from '../src/metrics/exposition-fragments.js';
import { Exposition } from '../src/metrics/exposition.js';
import { renderLabels } from '../src/metrics/exposition-text.js';

const FAMILIES: FamilySpec[] = [{ name: 'bullmq_queue_jobs', help: 'Jobs.', type: 'gauge' }];

/** 3,000 queues with `jobs` jobs each: its gzip is written in several slices. */
function collection(jobs: number): FragmentSet {
  const w = new FragmentWriter(FAMILIES.length);
  const fragments = Array.from({ length: 3000 }, (_, k) => {
    const q = `q${k}`;
    w.sample(0, FAMILIES[0]!, renderLabels(['queue'], [q]), [['queue', q]], jobs);
    return w.finish(`fp${k}-${jobs}`);
  });
  return new FragmentSet(FAMILIES, fragments);
}

const lines = (body: Buffer, prefix: string) =>
  gunzipSync(body)
    .toString()
    .split('\n')
    .filter((l) => l.startsWith(prefix));

describe('invalidate()', () => {
  it('writes the body with the new value at once: a scrape after a later publish gets it, not that publish', async () => {
    const e = new Exposition(60_000);
    const cycle = e.gauge(METRICS.exporterCycleDuration);
    cycle.set(1);
    await e.publish('collection', collection(1));
    // Scraped with gzip: from now on each change writes a gzipped body.
    expect(lines((await e.render('text', true)).body, 'bullmq_queue_jobs{')).toHaveLength(3000);

    // The cycle ends; then, before any scrape, the next collection is published (its body is written meanwhile).
    cycle.set(7);
    e.invalidate();
    await new Promise((resolve) => setImmediate(resolve));
    const publishing = e.publish('collection', collection(2));
    const m = await e.render('text', true);

    // Never a body without the value set before invalidate() ...
    expect(lines(m.body, METRICS.exporterCycleDuration.name)).toEqual([`${METRICS.exporterCycleDuration.name} 7`]);
    // ... and the one written then, with the collection of then: the scrape did not wait for the next one's body.
    const jobs = lines(m.body, 'bullmq_queue_jobs{');
    expect(jobs).toHaveLength(3000);
    expect(jobs.every((l) => l.endsWith(' 1'))).toBe(true);

    await publishing;
    const next = lines((await e.render('text', true)).body, 'bullmq_queue_jobs{');
    expect(next.every((l) => l.endsWith(' 2'))).toBe(true);
  });
});
