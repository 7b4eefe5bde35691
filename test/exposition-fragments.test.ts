// The fragment store (metrics/exposition-fragments.ts): what a set of fragments writes, in every format, is each
// family's header followed by that family's samples from every fragment in order, whatever order the samples
// were written in. Ground truth: the text built by hand from the same samples, and the protobuf decoded back.
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { MetricFamily } from '../src/metrics/client-model.js';
import { FragmentSet, FragmentWriter, type FamilySpec } from '../src/metrics/exposition-fragments.js';
import { header, num, renderLabels } from '../src/metrics/exposition-text.js';

const FAMILIES: FamilySpec[] = [
  { name: 'a_jobs', help: 'A.', type: 'gauge' },
  { name: 'b_empty', help: 'Never written.', type: 'gauge' },
  { name: 'c_total', help: 'C.', type: 'counter' },
  { name: 'd_last', help: 'D.', type: 'gauge' },
];

/** Per fragment, samples as [family, queue label, value], in the order written (families out of order on purpose). */
const WRITES: Array<Array<[number, string, number]>> = [
  [
    [2, 'q1', 5],
    [0, 'q1', 1.5],
    [3, 'q1', 0],
    [0, 'q1 "two"', -2],
  ],
  [[3, 'q2', 7]],
  [],
  [
    [0, 'q3', 1e21],
    [2, 'q3', 9],
  ],
];

/** The same, and a fragment past 64 KB (its offset tables are 32-bit, the others' 16-bit). */
const WITH_LARGE: Array<Array<[number, string, number]>> = [
  ...WRITES,
  Array.from({ length: 1500 }, (_, i): [number, string, number] => [[3, 0, 2][i % 3]!, `queue-${i}-${'x'.repeat(40)}`, i / 7]),
];

describe('FragmentSet', () => {
  it.each([
    { writes: WRITES, withProto: true },
    { writes: WRITES, withProto: false },
    { writes: WITH_LARGE, withProto: true },
    { writes: WITH_LARGE, withProto: false },
  ])(
    'writes every family once, its samples from every fragment in order, in text, OpenMetrics and protobuf ($writes.length fragments, protobuf written: $withProto)',
    async ({ writes, withProto }) => {
      const w = new FragmentWriter(FAMILIES.length);
      w.withProto = withProto;
      const fragments = writes.map((samples, k) => {
        for (const [f, queue, value] of samples) w.sample(f, FAMILIES[f]!, renderLabels(['queue'], [queue]), [['queue', queue]], value);
        return w.finish(`fp${k}`);
      });
      expect(fragments.map((fr) => fr.fp)).toEqual(writes.map((_, k) => `fp${k}`));
      if (writes === WITH_LARGE) expect(fragments.at(-1)!.store.length).toBeGreaterThan(0xffff);
      const set = new FragmentSet(FAMILIES, fragments);
      const samplesOf = (f: number) => writes.flatMap((samples) => samples.filter(([g]) => g === f));
      for (const openMetrics of [false, true]) {
        let want = '';
        FAMILIES.forEach((def, f) => {
          if (samplesOf(f).length === 0) return;
          want += header(def, openMetrics);
          for (const [, queue, value] of samplesOf(f)) want += `${def.name}{${renderLabels(['queue'], [queue])}} ${num(value)}\n`;
        });
        expect((await set.bytes(openMetrics ? 1 : 0)).toString()).toBe(want);
      }
      if (!withProto) return;
      const r = protobuf.Reader.create(await set.bytes(2));
      const decoded: Array<{ name: string; metric: Array<{ label: Array<{ value: string }>; gauge?: { value: number }; counter?: { value: number } }> }> = [];
      while (r.pos < r.len) decoded.push(MetricFamily.toObject(MetricFamily.decodeDelimited(r), { arrays: true }) as (typeof decoded)[number]);
      const wanted = FAMILIES.flatMap((def, f) =>
        samplesOf(f).length === 0 ? [] : [{ name: def.name, values: samplesOf(f).map(([, queue, value]) => [queue, value]) }],
      );
      expect(decoded.map((d) => ({ name: d.name, values: d.metric.map((m) => [m.label[0]!.value, (m.gauge ?? m.counter)!.value]) }))).toEqual(wanted);
    },
  );
});
