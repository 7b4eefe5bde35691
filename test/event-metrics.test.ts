// Rendering of persisted event accounting: counters and histograms set wholesale, job_name only when the
// accounting has names (escaped), DLQ adds under the source queue, counter families named per format.
import { describe, expect, it } from 'vitest';
import { QueueAccounting } from '../src/events/accounting.js';
import { EVENT_BUCKETS_SECONDS } from '../src/events/buckets.js';
import { EventMetrics } from '../src/metrics/event-metrics.js';
import { Exposition } from '../src/metrics/exposition.js';
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
    m.update({
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
    const w = { ...q, attempt: 'first' };
    expect(s.get(seriesKey('bullmq_job_wait_seconds_bucket', { ...w, le: '0.005' }))).toBe(1);
    expect(s.get(seriesKey('bullmq_job_wait_seconds_bucket', { ...w, le: '1' }))).toBe(1);
    expect(s.get(seriesKey('bullmq_job_wait_seconds_bucket', { ...w, le: '2.5' }))).toBe(2);
    expect(s.get(seriesKey('bullmq_job_wait_seconds_bucket', { ...w, le: String(EVENT_BUCKETS_SECONDS.at(-1)) }))).toBe(2);
    expect(s.get(seriesKey('bullmq_job_wait_seconds_bucket', { ...w, le: '+Inf' }))).toBe(2);
    expect(s.get(seriesKey('bullmq_job_wait_seconds_sum', w))).toBeCloseTo(2.003, 6);
    expect(s.get(seriesKey('bullmq_job_wait_seconds_count', w))).toBe(2);
    expect(s.get(seriesKey('bullmq_exporter_events_read_total', q))).toBe(9);
    expect(s.get(seriesKey('bullmq_dlq_added_total', q))).toBe(2);
    expect(s.get('bullmq_exporter_leader')).toBe(1);
  });

  it('drops every event series when the read-back failed', async () => {
    const e = new Exposition();
    const m = new EventMetrics(e);
    m.update({ leader: true, queues: [{ queue: { prefix: 'bull', name: 'email' }, stats: accounting().toStats() }] });
    m.update({ leader: false, queues: undefined });
    const body = (await e.render(false)).body.toString();
    expect(body).not.toMatch(/^bullmq_(jobs|job|exporter_events)_/m);
    expect(parsePromText(body).get('bullmq_exporter_leader')).toBe(0);
  });
});
