// Adversary (session 24): the busy-queue pace timed before predicted looks (collector/demand-pace.ts) seen from a
// real scraper on a real sidecar process: a steady 5 s scraper (the looks recur), then one scrape 1.5 s late, then a
// scraper that stops and a fast poller that joins. At each scrape, against what the producer added (Redis's clock at
// each add; no worker: waiting = added) and what Redis holds: numbers never ahead of Redis, the counters miss no event
// older than the exported lag, and how old the waiting gauge is.
import { describe, expect, it } from 'vitest';
import { followed, processHarness, producer, scrapeBusy, sleepUntil } from './helpers/process-harness.js';

const harness = processHarness();
const Q = { prefix: 'bull', name: 'busy' };

type Seen = Awaited<ReturnType<typeof scrapeBusy>>;

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
        seen.push(await scrapeBusy(s, raw, p, Q, `steady #${i}${i === 8 ? ' (1.5 s late)' : ''}`));
      }
      // A poller every second for 8 s, then the 5 s scraper alone again.
      const t1 = start + 14 * 5000;
      for (let i = 0; i < 8; i += 1) {
        await sleepUntil(t1 + i * 1000);
        seen.push(await scrapeBusy(s, raw, p, Q, `poller #${i}`));
      }
      const t2 = t1 + 10_000;
      for (let i = 0; i < 6; i += 1) {
        await sleepUntil(t2 + i * 5000);
        seen.push(await scrapeBusy(s, raw, p, Q, `after poller #${i}`));
      }
    } finally {
      await p.stop();
      console.log(seen.map((x) => x.row).join('\n'));
    }
    // The exported lag is honest: no event the counters miss is older than it (a round and a collection of slack).
    for (const x of seen) expect(x.counterAgeMs).toBeLessThanOrEqual(x.lagMs + 1000);
  }, 240_000);
});
