// Label names in /metrics come from MetricDef.labels (src/metrics/definitions.ts), the one source that also
// generates docs/metrics.md: every rendered sample carries exactly its definition's labels, and a label renamed in
// the definitions is renamed in the hand-rendered text too.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CollectionSnapshot, QueueState } from '../src/domain/queue-snapshot.js';
import { QueueAccounting } from '../src/events/accounting.js';
import type { MetricDef } from '../src/metrics/definitions.js';
import { renderLabels } from '../src/metrics/exposition-text.js';

function queue(prefix: string, name: string, extra: Partial<QueueState> = {}): QueueState {
  return {
    ref: { prefix, name },
    jobs: { waiting: 1, prioritized: 2, delayed: 3, active: 4, waiting_children: 5, completed: 6, failed: 7 },
    paused: false,
    oldestWaitingAgeSeconds: 1,
    delayedOverdue: 0,
    oldestActiveAgeSeconds: 2,
    orphanedActive: 0,
    workers: 1,
    rateLimited: false,
    ...extra,
  };
}

const snapshot: CollectionSnapshot = {
  seq: 1,
  ok: true,
  finishedAt: 1,
  durationSeconds: 0.1,
  lastSuccessAt: 1000,
  redisUp: true,
  queues: [queue('bull', 'email'), queue('bull', 'email-dlq', { dlqOf: 'email' })],
  queuesByPrefix: { bull: 2 },
  queuesDropped: 0,
};

function accounting(jobName: string): QueueAccounting {
  const acc = new QueueAccounting();
  for (const c of ['added', 'completed', 'failed', 'retried', 'stalled', 'deduplicated'] as const) acc.count(c, jobName);
  acc.observe('wait', 'first', jobName, 30);
  acc.observe('processing', 'completed', jobName, 30);
  acc.observe('e2e', 'failed', jobName, 30);
  acc.reader('read', 3);
  return acc;
}

/** Every sample of the sidecar's text: the queue gauges, the self-metrics and the event metrics. */
async function render(): Promise<{ text: string; metrics: Record<string, MetricDef> }> {
  const { Exposition } = await import('../src/metrics/exposition.js');
  const { QueueMetrics } = await import('../src/metrics/queue-metrics.js');
  const { EventMetrics } = await import('../src/metrics/event-metrics.js');
  const { METRICS } = await import('../src/metrics/definitions.js');
  const e = new Exposition();
  await new QueueMetrics(e).update(snapshot);
  await new EventMetrics(e).update({
    leader: true,
    queues: [
      { queue: { prefix: 'bull', name: 'email' }, stats: accounting('').toStats() },
      { queue: { prefix: 'bull', name: 'named' }, stats: accounting('send').toStats() },
      { queue: { prefix: 'bull', name: 'email-dlq' }, stats: accounting('').toStats() },
    ],
  });
  return { text: (await e.render(false)).body.toString(), metrics: METRICS };
}

/** Each sample line as its family's definition and the label names it carries (a histogram's `le` left out). */
function samples(text: string, metrics: Record<string, MetricDef>): Array<{ line: string; def: MetricDef; labels: string[] }> {
  const byName = new Map(Object.values(metrics).map((d) => [d.name, d]));
  return text
    .split('\n')
    .filter((l) => l.startsWith('bullmq_'))
    .map((line) => {
      const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0];
      const def = byName.get(name) ?? byName.get(name.replace(/_(bucket|sum|count)$/, ''));
      if (!def) throw new Error(`a sample of no definition: ${line}`);
      const labels = [...line.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)].map((m) => m[1]!).filter((l) => l !== 'le');
      return { line, def, labels };
    });
}

afterEach(() => {
  vi.doUnmock('../src/metrics/definitions.js');
  vi.resetModules();
});

describe('metric labels', () => {
  it("every sample carries its definition's labels, in order (job_name only where a job has a name)", async () => {
    const { text, metrics } = await render();
    const all = samples(text, metrics);
    expect(all.length).toBeGreaterThan(100);
    for (const { line, def, labels } of all) {
      const expected = labels.includes('job_name') ? def.labels : def.labels.filter((l) => l !== 'job_name');
      expect(labels, line).toEqual([...expected]);
    }
    expect(all.some((s) => s.labels.includes('job_name'))).toBe(true);
  });

  it('a label renamed in the definitions is renamed in every hand-rendered sample', async () => {
    vi.resetModules();
    vi.doMock('../src/metrics/definitions.js', async (importOriginal) => {
      const original = await importOriginal<typeof import('../src/metrics/definitions.js')>();
      const renamed = Object.fromEntries(
        Object.entries(original.METRICS).map(([k, def]) => [
          k,
          { ...def, labels: def.labels.map((l) => (l === 'queue' ? 'queue_name' : l === 'state' ? 'job_state' : l)) },
        ]),
      );
      return { ...original, METRICS: renamed };
    });
    const { text, metrics } = await render();
    const all = samples(text, metrics);
    expect(all.filter((s) => s.labels.includes('queue_name')).length).toBeGreaterThan(100);
    expect(all.filter((s) => s.labels.includes('job_state')).length).toBeGreaterThan(10);
    for (const { line, labels } of all) {
      expect(labels, line).not.toContain('queue');
      expect(labels, line).not.toContain('outcome');
    }
  });

  it('renders names with values in the same order, escapes values, leaves out an empty one and refuses one too many', () => {
    expect(renderLabels(['prefix', 'queue', 'job_name'], ['p\\', 'a"b', ''])).toBe('prefix="p\\\\",queue="a\\"b"');
    expect(renderLabels(['prefix', 'queue', 'job_name'], ['p', undefined, 'j'])).toBe('prefix="p",job_name="j"');
    expect(() => renderLabels(['prefix', 'queue'], ['p', 'q', 'waiting'])).toThrow(/3 label values for 2 labels/);
  });
});
