// Rendering of persisted event accounting: counters and histograms set wholesale, job_name only when the
// accounting has names (escaped), DLQ adds under the source queue, counter families named per format.
import { describe, expect, it } from 'vitest';
import { QueueAccounting } from '../src/events/accounting.js';
import { EXPOSED_BUCKETS_SECONDS } from '../src/events/buckets.js';
import { EventMetrics } from '../src/metrics/event-metrics.js';
import { Exposition } from '../src/metrics/exposition.js';
import { queueId } from '../src/domain/queue-ref.js';
import { parsePromText, seriesKey } from './helpers/prom-text.js';

function accounting(): QueueAccounting {
  const acc = new QueueAccounting();
  acc.count('added', '');
  acc.count('added', '');
  acc.count('completed', '');
  acc.observe('wait', 'first', '', 3); // first bucket (5 ms)
  acc.observe('wait', 'first', '', 2000); // 2.5 s bucket
  acc.reader('read', 9);
  return acc;
}

describe('event metrics rendering', () => {
  it('renders counters, cumulative buckets, sum and count, and reader health per queue', async () => {
    const e = new Exposition();
    const m = new EventMetrics(e);
    const named = new QueueAccounting();
    named.count('completed', 'send');
    named.count('completed', 'say "hi"\\');
    await m.update({
      leader: true,
      queues: [
        { queue: { prefix: 'bull', name: 'email' }, stats: accounting().toStats() },
        { queue: { prefix: 'bull', name: 'email-dlq' }, stats: accounting().toStats() },
        { queue: { prefix: 'bull', name: 'named' }, stats: named.toStats() },
      ],
    });
    const om = (await e.render(true)).body.toString();
    expect(om).toContain('bullmq_jobs_added_total{prefix="bull",queue="email"} 2');
    expect(om).toContain('# TYPE bullmq_jobs_added counter');
    const s = parsePromText((await e.render(false)).body.toString());
    const q = { prefix: 'bull', queue: 'email' };
    expect(s.get(seriesKey('bullmq_jobs_added_total', q))).toBe(2);
    expect(s.get(seriesKey('bullmq_jobs_completed_total', q))).toBe(1);
    expect(s.get(seriesKey('bullmq_jobs_completed_total', { prefix: 'bull', queue: 'named', job_name: 'send' }))).toBe(1);
    expect(s.get(seriesKey('bullmq_jobs_completed_total', { prefix: 'bull', queue: 'named', job_name: 'say "hi"\\' }))).toBe(1);
    expect((await e.render(false)).body.toString()).toContain('# TYPE bullmq_jobs_added_total counter');
    // Attempts are summed on /metrics (the series budget): the wait histogram has no attempt label.
    const w = q;
    // The exposed bounds are a subset of the stored ones: 3 ms and 2 s fall under 0.1 and 5.
    expect(s.get(seriesKey('bullmq_job_wait_seconds_bucket', { ...w, le: '0.005' }))).toBeUndefined();
    expect(s.get(seriesKey('bullmq_job_wait_seconds_bucket', { ...w, le: '0.1' }))).toBe(1);
    expect(s.get(seriesKey('bullmq_job_wait_seconds_bucket', { ...w, le: '1' }))).toBe(1);
    expect(s.get(seriesKey('bullmq_job_wait_seconds_bucket', { ...w, le: '5' }))).toBe(2);
    expect(s.get(seriesKey('bullmq_job_wait_seconds_bucket', { ...w, le: '21600' }))).toBe(2);
    expect(s.get(seriesKey('bullmq_job_wait_seconds_bucket', { ...w, le: '+Inf' }))).toBe(2);
    expect(s.get(seriesKey('bullmq_job_wait_seconds_sum', w))).toBeCloseTo(2.003, 6);
    expect(s.get(seriesKey('bullmq_job_wait_seconds_count', w))).toBe(2);
    expect(s.get(seriesKey('bullmq_exporter_events_read_total', q))).toBe(9);
    expect(s.get(seriesKey('bullmq_dlq_added_total', q))).toBe(2);
    expect(s.get('bullmq_exporter_leader')).toBe(1);
    // A dead-letter queue's jobs are parked, not run: no latency histograms, its reader health stays.
    const dlq = { prefix: 'bull', queue: 'email-dlq' };
    expect([...s.keys()].filter((k) => k.startsWith('bullmq_job_') && k.includes('"email-dlq"'))).toEqual([]);
    expect(s.get(seriesKey('bullmq_exporter_events_read_total', dlq))).toBe(9);
  });

  it('keeps a queue whose stats object is handed out again, and renders it again when its dead-letter queue appears', async () => {
    const e = new Exposition(0);
    const m = new EventMetrics(e);
    const email = { prefix: 'bull', name: 'email' };
    const stats = accounting().toStats();
    await m.update({ leader: true, queues: [{ queue: email, stats }] });
    expect(m.lastRendered).toBe(1);
    const q = { prefix: 'bull', queue: 'email' };
    expect(parsePromText((await e.render(false)).body.toString()).get(seriesKey('bullmq_dlq_added_total', q))).toBe(0);
    // The same object (the read-back's unchanged queue): nothing is rendered again.
    await m.update({ leader: true, queues: [{ queue: email, stats }] });
    expect(m.lastRendered).toBe(0);
    // Same stats object, but email-dlq now exists: email's own 0 gives way to the dead-letter queue's adds.
    const dlqStats = accounting().toStats();
    await m.update({
      leader: true,
      queues: [
        { queue: email, stats },
        { queue: { prefix: 'bull', name: 'email-dlq' }, stats: dlqStats },
      ],
    });
    const text = (await e.render(false)).body.toString();
    expect(text.match(/^bullmq_dlq_added_total\{prefix="bull",queue="email"\}/gm)).toHaveLength(1);
    expect(parsePromText(text).get(seriesKey('bullmq_dlq_added_total', q))).toBe(2);
    const fresh = new Exposition(0);
    await new EventMetrics(fresh).update({
      leader: true,
      queues: [
        { queue: email, stats },
        { queue: { prefix: 'bull', name: 'email-dlq' }, stats: dlqStats },
      ],
    });
    expect(ours({ body: Buffer.from(text) })).toEqual(ours(await fresh.render(false)));
    // An equal stats object, new (a sweep read the hash again): its fingerprint matches, nothing is rendered.
    await m.update({
      leader: true,
      queues: [
        { queue: { ...email }, stats: accounting().toStats() },
        { queue: { prefix: 'bull', name: 'email-dlq' }, stats: dlqStats },
      ],
    });
    expect(m.lastRendered).toBe(0);
    // And a new count on the same queue shows.
    const more = accounting();
    more.count('completed', '');
    await m.update({ leader: true, queues: [{ queue: email, stats: more.toStats() }] });
    expect(parsePromText((await e.render(false)).body.toString()).get(seriesKey('bullmq_jobs_completed_total', q))).toBe(2);
  });

  it("renders only the queues discovery lists: a deleted queue's series leave at the next collection", async () => {
    const e = new Exposition();
    const m = new EventMetrics(e);
    const queues = ['kept', 'deleted'].map((name) => ({ queue: { prefix: 'bull', name }, stats: accounting().toStats() }));
    await m.update({ leader: true, queues, listed: new Set([queueId({ prefix: 'bull', name: 'kept' })]) });
    const body = (await e.render(false)).body.toString();
    expect(body).toContain('queue="kept"');
    expect(body).not.toContain('queue="deleted"');
  });

  it('starts every histogram series and the DLQ-added counter of each queue at 0, so rate() sees their first increase', async () => {
    const e = new Exposition();
    const m = new EventMetrics(e);
    const fresh = new QueueAccounting();
    fresh.count('added', ''); // a job was enqueued; nothing has waited or finished yet
    await m.update({
      leader: true,
      queues: [
        { queue: { prefix: 'bull', name: 'email' }, stats: accounting().toStats() },
        { queue: { prefix: 'bull', name: 'email-dlq' }, stats: accounting().toStats() },
        { queue: { prefix: 'bull', name: 'fresh' }, stats: fresh.toStats() },
        { queue: { prefix: 'bull', name: 'never-used' }, stats: new QueueAccounting().toStats() },
      ],
    });
    const body = (await e.render(false)).body.toString();
    const s = parsePromText(body);
    // A queue that has never seen a job carries zero counters but no histogram series (they would cost 168
    // samples per idle queue); its first job's `added` brings them in before anything can wait or finish.
    const unused = { prefix: 'bull', queue: 'never-used' };
    expect(s.get(seriesKey('bullmq_jobs_completed_total', unused))).toBe(0);
    expect([...s.keys()].filter((k) => k.startsWith('bullmq_job_') && k.includes('"never-used"'))).toEqual([]);
    const idle = { prefix: 'bull', queue: 'fresh' };
    // Each latency histogram starts at 0 (attempts and outcomes are summed on /metrics, the series budget).
    for (const name of ['bullmq_job_wait_seconds', 'bullmq_job_processing_seconds', 'bullmq_job_e2e_seconds'] as const) {
      expect(s.get(seriesKey(`${name}_count`, idle)), name).toBe(0);
      expect(s.get(seriesKey(`${name}_sum`, idle))).toBe(0);
      for (const le of [...EXPOSED_BUCKETS_SECONDS.map(String), '+Inf']) expect(s.get(seriesKey(`${name}_bucket`, { ...idle, le }))).toBe(0);
    }
    expect(s.get(seriesKey('bullmq_dlq_added_total', idle))).toBe(0);
    // Observed series keep their values; a queue with a DLQ gets its adds once, not an extra 0.
    const email = { prefix: 'bull', queue: 'email' };
    expect(s.get(seriesKey('bullmq_job_wait_seconds_count', email))).toBe(2);
    expect(body.match(/^bullmq_dlq_added_total\{prefix="bull",queue="email"\}/gm)).toHaveLength(1);
    expect(s.get(seriesKey('bullmq_dlq_added_total', email))).toBe(2);
    // Every line is unique: Prometheus rejects a scrape with a duplicate series.
    const lines = body.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(new Set(lines.map((l) => l.slice(0, l.lastIndexOf(' ')))).size).toBe(lines.length);
  });

  it('drops every event series when the read-back failed', async () => {
    const e = new Exposition();
    const m = new EventMetrics(e);
    await m.update({ leader: true, queues: [{ queue: { prefix: 'bull', name: 'email' }, stats: accounting().toStats() }] });
    await m.update({ leader: false, queues: undefined });
    const body = (await e.render(false)).body.toString();
    expect(body).not.toMatch(/^bullmq_(jobs|job|exporter_events)_/m);
    expect(parsePromText(body).get('bullmq_exporter_leader')).toBe(0);
  });
});

/** The body's own series lines (the process metrics move between two renders). */
function ours(r: { body: Buffer }): string[] {
  return r.body
    .toString()
    .split('\n')
    .filter((l) => l.startsWith('bullmq_'));
}
