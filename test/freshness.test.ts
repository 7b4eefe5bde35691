// One freshness rule (src/collector/freshness.ts) for /health and /readyz, /metrics and /api/queues: at every age
// around the limit, and with the interval stretched past the configured one (sidecar/stretch.ts), the health
// verdict and the queue board call the same collection stale.
import { describe, expect, it } from 'vitest';
import { isStale, staleLimitSeconds } from '../src/collector/freshness.js';
import type { CollectionSnapshot } from '../src/domain/queue-snapshot.js';
import { assessHealth } from '../src/http/health.js';
import { QueueBoard } from '../src/status/queue-board.js';

const LAST_SUCCESS = 1_000_000;
const snapshot: CollectionSnapshot = {
  seq: 1,
  ok: true,
  finishedAt: LAST_SUCCESS,
  durationSeconds: 1,
  lastSuccessAt: LAST_SUCCESS,
  redisUp: true,
  queues: [],
  queuesByPrefix: {},
  queuesDropped: 0,
};

describe('freshness', () => {
  it('/health and the queue board agree at every age, with the configured or a stretched interval', async () => {
    const configured = 5;
    const board = new QueueBoard({ collectIntervalSeconds: configured, histogramBounds: [1] });
    await board.update(snapshot);
    for (const interval of [configured, 12, 40]) {
      const limitMs = staleLimitSeconds(interval) * 1000;
      for (const ageMs of [0, limitMs - 1, limitMs, limitMs + 1, 2 * limitMs]) {
        const now = LAST_SUCCESS + ageMs;
        const stale = ageMs > limitMs;
        expect(isStale(snapshot, now, interval), `${interval} s, ${ageMs} ms`).toBe(stale);
        expect(assessHealth(snapshot, now, interval).status, `${interval} s, ${ageMs} ms`).toBe(stale ? 'unavailable' : 'ok');
        const res = board.response({ now, intervalSeconds: interval });
        expect(res.collection.ok, `${interval} s, ${ageMs} ms`).toBe(!stale);
        expect(res.collection.intervalSeconds).toBe(interval);
      }
    }
  });

  it('a collection that never succeeded is not stale, it is missing', () => {
    expect(isStale(undefined, LAST_SUCCESS, 5)).toBe(false);
    expect(isStale({ lastSuccessAt: 0 }, LAST_SUCCESS, 5)).toBe(false);
  });
});
