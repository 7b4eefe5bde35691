// Adversarial probe (issue 18): a queue obliterated while the sidecar watches it, and a paused one resumed. Ground
// truth: the job and meta tables. The obliterated queue's gauges leave /metrics and /api/queues after the next
// discovery pass (no stale backlog); the paused flag follows pause and resume.
import { describe, expect, it } from 'vitest';
import type { QueuesResponse } from '../src/status/queue-view.js';
import { freshMetrics, usePostgresSuite } from './helpers/postgres-suite.js';
import { seriesKey } from './helpers/prom-text.js';

const POLL = { timeout: 60_000, interval: 250 };

describe('adversary: queues going away and pausing under the sidecar', () => {
  const pg = usePostgresSuite();

  it('drops an obliterated queue’s gauges and follows pause and resume', async () => {
    const gone = pg.bull.queue('gone');
    await gone.add('a', {});
    await gone.add('b', {});
    const held = pg.bull.queue('held');
    await held.add('a', {});
    const s = await pg.sidecar({ discoveryInterval: 0.5 });
    await s.refresh();
    await s.start();
    const waiting = (m: Map<string, number>, queue: string) => m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bullmq', queue, state: 'waiting' }));
    const paused = (m: Map<string, number>, queue: string) => m.get(seriesKey('bullmq_queue_paused', { prefix: 'bullmq', queue }));
    await expect.poll(async () => waiting(await freshMetrics(s), 'gone'), POLL).toBe(2);
    // Absent while not paused (docs/metrics.md).
    expect(paused(await freshMetrics(s), 'held')).toBeUndefined();

    await gone.obliterate({ force: true });
    await held.pause();
    await expect.poll(async () => paused(await freshMetrics(s), 'held'), POLL).toBe(1);
    await expect.poll(async () => waiting(await freshMetrics(s), 'gone') ?? 'absent', POLL).toBe('absent');
    const api = JSON.parse((await s.app.inject({ method: 'GET', url: '/api/queues' })).body) as QueuesResponse;
    expect(api.queues.map((q) => q.name)).toEqual(['held']);
    expect(api.queues[0]!.backlog).toBe(1);
    await held.resume();
    await expect.poll(async () => paused(await freshMetrics(s), 'held') ?? 'absent', POLL).toBe('absent');
  });
});
