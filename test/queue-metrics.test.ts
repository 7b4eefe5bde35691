// The queue gauges are rendered as text straight from a snapshot: checked against the snapshot in both
// exposition formats, including label values that need escaping. No network.
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { CollectionSnapshot, QueueState } from '../src/domain/queue-snapshot.js';
import { Exposition } from '../src/metrics/exposition.js';
import { QueueMetrics } from '../src/metrics/queue-metrics.js';
import { parsePromText, seriesKey } from './helpers/prom-text.js';
import { protobufSeries } from './helpers/protobuf-series.js';

function queue(prefix: string, name: string, i: number, extra: Partial<QueueState> = {}): QueueState {
  return {
    ref: { prefix, name },
    jobs: { waiting: i, prioritized: i + 1, delayed: i + 2, active: i + 3, waiting_children: i + 4, completed: i + 5, failed: i + 6 },
    paused: i % 2 === 1,
    oldestWaitingAgeSeconds: i + 0.25,
    delayedOverdue: i + 7,
    oldestActiveAgeSeconds: i + 0.5,
    orphanedActive: i + 8,
    workers: i + 9,
    rateLimited: i % 2 === 0,
    ...extra,
  };
}

function snapshot(seq: number, queues: QueueState[], ok = true): CollectionSnapshot {
  return {
    seq,
    ok,
    finishedAt: 1,
    durationSeconds: 0.5,
    lastSuccessAt: ok ? 1000 : 0,
    redisUp: ok,
    queues,
    queuesByPrefix: { bull: queues.length },
    queuesDropped: 0,
  };
}

const weird = 'we"ird\\name';
const queues = [queue('bull', 'email', 0), queue('bull', weird, 1, { workers: undefined }), queue('other', 'email-dlq', 2, { dlqOf: 'email' })];

describe('queue gauges', () => {
  it('render every value of the snapshot, with escaped labels, in both formats', async () => {
    const e = new Exposition();
    await new QueueMetrics(e).update(snapshot(1, queues));
    for (const om of [false, true]) {
      const { body } = await e.render(om);
      const text = body.toString();
      const s = parsePromText(text);
      for (const q of queues) {
        const l = { prefix: q.ref.prefix, queue: q.ref.name };
        for (const [state, n] of Object.entries(q.jobs)) expect(s.get(seriesKey('bullmq_queue_jobs', { ...l, state }))).toBe(n);
        // Only while paused (the series budget, docs/metrics.md): absent, not 0, otherwise.
        expect(s.get(seriesKey('bullmq_queue_paused', l))).toBe(q.paused ? 1 : undefined);
        expect(s.get(seriesKey('bullmq_queue_oldest_waiting_age_seconds', l))).toBe(q.oldestWaitingAgeSeconds);
        expect(s.get(seriesKey('bullmq_queue_delayed_overdue_jobs', l))).toBe(q.delayedOverdue);
        expect(s.get(seriesKey('bullmq_queue_oldest_active_age_seconds', l))).toBe(q.oldestActiveAgeSeconds);
        expect(s.get(seriesKey('bullmq_queue_orphaned_active_jobs', l))).toBe(q.orphanedActive || undefined);
        expect(s.get(seriesKey('bullmq_queue_workers', l))).toBe(q.workers);
        expect(s.get(seriesKey('bullmq_queue_rate_limited', l))).toBe(q.rateLimited ? 1 : undefined);
      }
      expect(text).toContain(`queue="we\\"ird\\\\name"`);
      const dlq = { prefix: 'other', queue: 'email' };
      expect(s.get(seriesKey('bullmq_dlq_jobs', dlq))).toBe(2 + 3 + 4 + 5 + 6 + 8);
      expect(s.get(seriesKey('bullmq_dlq_oldest_age_seconds', dlq))).toBe(2.25);
      expect([...s.keys()].filter((k) => k.startsWith('bullmq_dlq_jobs{'))).toHaveLength(1);
      expect(text.match(/^# TYPE bullmq_queue_jobs gauge$/gm)).toHaveLength(1);
      if (om) {
        expect(text).not.toMatch(/\n\n/);
        expect(text.match(/# EOF/g)).toHaveLength(1);
        expect(text.endsWith('# EOF\n')).toBe(true);
      }
    }
  });

  it('drop every queue series after a failed collection and come back with the next good one', async () => {
    const e = new Exposition(0);
    const m = new QueueMetrics(e);
    await m.update(snapshot(1, queues));
    await m.update(snapshot(2, [], false));
    const down = (await e.render(false)).body.toString();
    expect(down).not.toMatch(/^bullmq_queue_/m);
    expect(down).toContain('# TYPE bullmq_queue_jobs gauge');
    expect(parsePromText(down).get('bullmq_exporter_up')).toBe(0);
    await m.update(snapshot(3, queues.slice(0, 1)));
    const back = parsePromText((await e.render(false)).body.toString());
    expect(back.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'email', state: 'failed' }))).toBe(6);
    expect(back.get(seriesKey('bullmq_queue_paused', { prefix: 'bull', queue: weird }))).toBeUndefined();
  });

  it('a first protobuf scrape after text-only renders carries every queue series, labels as in the text', async () => {
    // Without the protobuf the label pairs are not built (only the protobuf is written from them): the first
    // protobuf render builds them, for a queue rendered again and for one that keeps its text-only fragment.
    const e = new Exposition();
    const m = new QueueMetrics(e);
    await m.update(snapshot(1, queues));
    const moved = [queues[0]!, { ...queues[1]!, workers: 3 }, queues[2]!];
    await m.update(snapshot(2, moved));
    expect(e.partsWithProtobuf).toBe(false);
    const proto = protobufSeries((await e.render('protobuf')).body);
    const text = parsePromText((await e.render(false)).body.toString());
    const own = (s: Map<string, number>) => new Map([...s].filter(([k]) => /^bullmq_(queue|dlq)_/.test(k)));
    // 3 x 7 job counts, 1 paused, 3 x 5 other gauges, 2 rate limited, 2 dead-letter ones.
    expect(own(text).size).toBe(21 + 1 + 15 + 2 + 2);
    expect(own(proto)).toEqual(own(text));
    expect(proto.get(seriesKey('bullmq_queue_workers', { prefix: 'bull', queue: weird }))).toBe(3);
  });

  it('serves one gzip body per render that inflates to the same text', async () => {
    const e = new Exposition();
    await new QueueMetrics(e).update(snapshot(1, queues));
    const [plain, gz, gz2] = await Promise.all([e.render(false), e.render(false, true), e.render(false, true)]);
    expect(gz.contentEncoding).toBe('gzip');
    expect(gz2.body).toBe(gz.body);
    expect(gunzipSync(gz.body).equals(plain.body)).toBe(true);
  });
  it('re-renders a queue when any one of its own values moves, and only its ages otherwise, as a fresh render would', async () => {
    const base = queue('bull', 'email', 0);
    const moves: Array<Partial<QueueState>> = [
      { oldestWaitingAgeSeconds: 9.5, oldestActiveAgeSeconds: 3 }, // ages only: the fragment is kept
      { jobs: { ...base.jobs, failed: 99 } },
      { paused: !base.paused },
      { delayedOverdue: 0 },
      { orphanedActive: 0 },
      { workers: undefined },
      { workers: 0 },
      { rateLimited: !base.rateLimited },
      { dlqOf: 'other' },
    ];
    for (const [k, move] of moves.entries()) {
      const e = new Exposition(0);
      const m = new QueueMetrics(e);
      // The same ref, as discovery hands it out collection after collection.
      await m.update(snapshot(1, [base]));
      const moved = { ...base, ...move };
      await m.update(snapshot(2, [moved]));
      expect(m.lastRendered).toBe(k === 0 ? 0 : 1);
      const fresh = new Exposition(0);
      await new QueueMetrics(fresh).update(snapshot(2, [moved]));
      expect(ours(await e.render(false))).toEqual(ours(await fresh.render(false)));
    }
  });
});

/** The body's own series lines (the process metrics move between two renders). */
function ours(r: { body: Buffer }): string[] {
  return r.body
    .toString()
    .split('\n')
    .filter((l) => l.startsWith('bullmq_'));
}
