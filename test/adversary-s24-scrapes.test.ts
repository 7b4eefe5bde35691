// Adversary (session 24): the busy-queue pace timed before predicted looks (collector/demand-pace.ts) seen from a
// real scraper on a real sidecar process: a steady 5 s scraper (the looks recur), then one scrape 1.5 s late, then a
// scraper that stops and a fast poller that joins. At each scrape, against what the producer added (Redis's clock at
// each add; no worker: waiting = added) and what Redis holds: numbers never ahead of Redis, the counters miss no event
// older than the exported lag, and how old the waiting gauge is.
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { followed, processHarness, producer, redisMs, sleepUntil } from './helpers/process-harness.js';
import { metric, type SidecarProcess } from './helpers/sidecar-process.js';

const harness = processHarness();
const Q = { prefix: 'bull', name: 'busy' };

interface Seen {
  label: string;
  gaugeAgeMs: number;
  counterAgeMs: number;
  lagMs: number;
}

async function scrapeAt(s: SidecarProcess, raw: Redis, p: ReturnType<typeof producer>, label: string): Promise<Seen> {
  const before = p.addedAt.length;
  const m = await s.metrics();
  const at = await redisMs(raw);
  const after = p.addedAt.length;
  const waiting = metric(m, 'bullmq_queue_jobs', Q, { state: 'waiting' });
  const added = metric(m, 'bullmq_jobs_added_total', Q);
  const lagMs = metric(m, 'bullmq_exporter_events_lag_seconds', Q) * 1000;
  // Never ahead of Redis: the 'first' job plus the producer's.
  expect(waiting).toBeLessThanOrEqual(after + 1);
  expect(added).toBeLessThanOrEqual(after);
  const missed = (n: number) => (n < before ? at - (p.addedAt[n] as number) : 0);
  const seen = { label, gaugeAgeMs: missed(waiting - 1), counterAgeMs: missed(added), lagMs };
  console.log(
    `${label}: waiting ${waiting} added ${added} of ${before}..${after}; gauge misses jobs up to ${seen.gaugeAgeMs} ms old, counters ${seen.counterAgeMs} ms; lag ${lagMs} ms`,
  );
  return seen;
}

describe('adversary s24: scrapes against a busy queue paced by predicted looks', () => {
  it('a steady 5 s scraper, one late scrape, a poller joining and leaving: counters within the lag, numbers never ahead', async () => {
    const { raw, bull, sidecar } = await harness.start();
    const q = bull.queue(Q.name);
    await q.add('first', {});
    const s = await sidecar({ queues: Q.name, leaseSeconds: 1 });
    await followed(raw, Q);
    const p = producer(q, raw, 50);
    const seen: Seen[] = [];
    try {
      const start = Date.now();
      // Steady 5 s scrapes (> 2 x LEAD_MS: recurring), the 9th 1.5 s late.
      for (let i = 0; i < 14; i += 1) {
        await sleepUntil(start + i * 5000 + (i === 8 ? 1500 : 0));
        seen.push(await scrapeAt(s, raw, p, `steady #${i}${i === 8 ? ' (1.5 s late)' : ''}`));
      }
      // A poller every second for 8 s, then the 5 s scraper alone again.
      const t1 = start + 14 * 5000;
      for (let i = 0; i < 8; i += 1) {
        await sleepUntil(t1 + i * 1000);
        seen.push(await scrapeAt(s, raw, p, `poller #${i}`));
      }
      const t2 = t1 + 10_000;
      for (let i = 0; i < 6; i += 1) {
        await sleepUntil(t2 + i * 5000);
        seen.push(await scrapeAt(s, raw, p, `after poller #${i}`));
      }
    } finally {
      await p.stop();
    }
    // The exported lag is honest: no event the counters miss is older than it (a round and a collection of slack).
    for (const x of seen) expect(x.counterAgeMs).toBeLessThanOrEqual(x.lagMs + 1000);
  }, 240_000);
});
