// What /metrics shows as time passes (src/sidecar/sidecar-metrics.ts): a scrape only reads. The last collection's
// queue gauges and event series are blanked by the freshness rule (collector/freshness.ts) when it calls them
// stale, with no scrape needed and none earlier; the leader flag follows the event follower between collections.
import { describe, expect, it } from 'vitest';
import { isStale, staleLimitSeconds } from '../src/collector/freshness.js';
import type { EventFollower } from '../src/domain/backend.js';
import { queueId, type QueueRef } from '../src/domain/queue-ref.js';
import type { CollectionSnapshot, QueueState } from '../src/domain/queue-snapshot.js';
import { QueueAccounting } from '../src/events/accounting.js';
import { SidecarMetrics } from '../src/sidecar/sidecar-metrics.js';
import { waitFor } from './helpers/bullmq.js';
import { parsePromText, seriesKey } from './helpers/prom-text.js';

const REF: QueueRef = { prefix: 'bull', name: 'mail' };
/** A 6 s limit: long enough that the fresh checks run well inside it on a loaded machine. */
const INTERVAL = 2;

function follower(): EventFollower & { isLeader: boolean } {
  return { isLeader: false, start: async () => undefined, setQueues: () => undefined, close: async () => undefined };
}

function snapshot(lastSuccessAt: number): CollectionSnapshot {
  const q: QueueState = {
    ref: REF,
    jobs: { waiting: 3, prioritized: 0, delayed: 0, active: 1, waiting_children: 0, completed: 5, failed: 0 },
    paused: false,
    oldestWaitingAgeSeconds: 2,
    delayedOverdue: 0,
    oldestActiveAgeSeconds: 1,
    orphanedActive: 0,
    workers: 1,
    rateLimited: false,
  };
  return {
    seq: 1,
    ok: true,
    finishedAt: lastSuccessAt,
    durationSeconds: 0.01,
    lastSuccessAt,
    redisUp: true,
    queues: [q],
    queuesByPrefix: { bull: 1 },
    queuesDropped: 0,
  };
}

async function scrape(m: SidecarMetrics) {
  return parsePromText((await m.render(false, false)).body.toString());
}

const WAITING = seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: 'mail', state: 'waiting' });
const ADDED = seriesKey('bullmq_jobs_added_total', { prefix: 'bull', queue: 'mail' });

describe('sidecar metrics over time', () => {
  it('blanks the gauges and event series once the freshness rule calls the collection stale, without a scrape, never before', async () => {
    const events = follower();
    const m = new SidecarMetrics({ collectIntervalSeconds: INTERVAL, events });
    try {
      const s = snapshot(Date.now());
      const acc = new QueueAccounting();
      acc.count('added', '');
      acc.count('added', '');
      await m.collected(s);
      await m.accounting([{ queue: REF, stats: acc.toStats() }], new Set([queueId(REF)]));
      m.cycleDone(s, 0.01, INTERVAL);

      const fresh = await scrape(m);
      expect(isStale(s, Date.now(), INTERVAL), 'the machine took the whole limit to get here; run again').toBe(false);
      expect(fresh.get('bullmq_exporter_up')).toBe(1);
      expect(fresh.get(WAITING)).toBe(3);
      expect(fresh.get(ADDED)).toBe(2);
      // Scraping again and again while fresh changes nothing.
      for (let i = 0; i < 3; i += 1) expect((await scrape(m)).get(WAITING)).toBe(3);

      // No scrape until well past the limit: the timer, not a scrape, must have blanked the values.
      const deadline = s.lastSuccessAt + staleLimitSeconds(INTERVAL) * 1000;
      await waitFor('past the stale limit', () => Date.now() > deadline + 200, 30_000);
      const stale = await scrape(m);
      expect(stale.get('bullmq_exporter_up')).toBe(0);
      expect(stale.get(WAITING)).toBeUndefined();
      expect(stale.get(ADDED)).toBeUndefined();
    } finally {
      m.close();
    }
  });

  it('shows fresh values up to the limit: a collection younger than it is not blanked by a later cycle', async () => {
    const m = new SidecarMetrics({ collectIntervalSeconds: INTERVAL });
    try {
      // Succeeded just now, re-armed twice (as cycles end): still shown.
      const s = snapshot(Date.now());
      await m.collected(s);
      m.cycleDone(s, 0.01, INTERVAL);
      m.cycleDone(s, 0.01, INTERVAL);
      const seen = await scrape(m);
      expect(isStale(s, Date.now(), INTERVAL), 'the machine took the whole limit to get here; run again').toBe(false);
      expect(seen.get(WAITING)).toBe(3);
      // One that succeeded longer ago than the limit is blanked as the cycle ends.
      const old = { ...snapshot(Date.now() - staleLimitSeconds(INTERVAL) * 1000 - 1), seq: 2 };
      await m.collected(old);
      m.cycleDone(old, 0.01, INTERVAL);
      const blank = await scrape(m);
      expect(blank.get('bullmq_exporter_up')).toBe(0);
      expect(blank.get(WAITING)).toBeUndefined();
    } finally {
      m.close();
    }
  });

  it("a new collection keeps its gauges shown while the rest of its cycle outlasts the previous one's limit", async () => {
    const m = new SidecarMetrics({ collectIntervalSeconds: INTERVAL });
    try {
      // The previous cycle's collection is 1 s short of the limit when it ends.
      const before = snapshot(Date.now() - (staleLimitSeconds(INTERVAL) - 1) * 1000);
      await m.collected(before);
      m.cycleDone(before, 0.01, INTERVAL);
      // The next collection succeeds now; its cycle (read-back, rendering, board) has not ended yet.
      const now = { ...snapshot(Date.now()), seq: 2 };
      now.queues = [{ ...now.queues[0]!, jobs: { ...now.queues[0]!.jobs, waiting: 7 } }];
      await m.collected(now);
      await waitFor("past the previous collection's limit", () => Date.now() > before.lastSuccessAt + staleLimitSeconds(INTERVAL) * 1000 + 200, 30_000);
      const seen = await scrape(m);
      expect(isStale(now, Date.now(), INTERVAL), 'the machine took the whole limit to get here; run again').toBe(false);
      expect(seen.get('bullmq_exporter_up')).toBe(1);
      expect(seen.get(WAITING)).toBe(7);
    } finally {
      m.close();
    }
  });

  it("follows the event follower's leadership between collections", async () => {
    const events = follower();
    const m = new SidecarMetrics({ collectIntervalSeconds: INTERVAL, events });
    try {
      expect((await scrape(m)).get('bullmq_exporter_leader')).toBe(0);
      events.isLeader = true;
      await waitFor('leader 1', async () => (await scrape(m)).get('bullmq_exporter_leader') === 1, 30_000);
      events.isLeader = false;
      await waitFor('leader 0', async () => (await scrape(m)).get('bullmq_exporter_leader') === 0, 30_000);
    } finally {
      m.close();
    }
  });
});
