// Adversarial (session 23): the read pacing's burst guard (events/burst-guard.ts, event-reader.ts readPaced). A
// stream capped at 500 (or 120: a small maxLenEvents) gets a slow steady trickle long enough for the reader to learn
// its rate and leave it out of rounds for a pace (nobody scrapes: the pace is the longest), then a sudden burst on
// that same stream for 3 s, spread in small adds (400 to 1,000 entries a second, as fast as the adds go). A reader
// reading it every round, as before the pacing, keeps up with that; one that waited for the guard would see entries
// trimmed away. Ground truth: XINFO entries-added (read + lost must equal it) and the jobs the test added; lost must
// be 0. The stream capped at 120 with 40 jobs per 100 ms lost 282 of 1,950 entries (added_total 834 of 975) while
// streams retaining under 200 entries were read-paced (99e38de); none at the session's start nor after.
import { describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { followed, processHarness } from './helpers/process-harness.js';
import { entriesAdded, metric } from './helpers/sidecar-process.js';

const harness = processHarness();

const Q = { prefix: 'bull', name: 'trickle' };

describe('adversary s23: a burst on a stream the reader paces', () => {
  it.each([
    { maxLen: 500, trickleMs: 200, perTick: 20 },
    { maxLen: 500, trickleMs: 200, perTick: 50 },
    { maxLen: 120, trickleMs: 1000, perTick: 10 },
    { maxLen: 120, trickleMs: 1000, perTick: 40 },
  ])(
    'a stream capped at $maxLen paced slowly (a job every $trickleMs ms), then $perTick jobs (2 entries each) every 100 ms for 3 s: nothing lost, every add counted',
    async ({ maxLen, trickleMs, perTick }) => {
      const { raw, bull, sidecar } = await harness.start(['--stream-node-max-entries', '10']);
      const q = bull.queue(Q.name, { streams: { events: { maxLen } } });
      await q.add('seed', {});
      const from = await entriesAdded(raw, Q);
      const s = await sidecar({ queues: Q.name, leaseSeconds: 1, extraArgs: ['--collect-busy-max', '30'] });
      await followed(raw, Q);
      let jobs = 0;
      const add = async (n: number) => {
        await q.addBulk(Array.from({ length: n }, () => ({ name: 'j', data: { i: jobs } })));
        jobs += n;
      };
      // A trickle for 15 s of Redis's clock: the reader learns its rate, and the stream fills.
      const t0 = Number((await raw.time())[0]);
      while (Number((await raw.time())[0]) - t0 < 15) {
        await add(1);
        await new Promise((r) => setTimeout(r, trickleMs));
      }
      // The burst: perTick jobs (2 entries each) every 100 ms for 3 s.
      const t1 = Number((await raw.time())[0]);
      while (Number((await raw.time())[0]) - t1 < 3) {
        await add(perTick);
        await new Promise((r) => setTimeout(r, 100));
      }
      // Every entry since the reader followed the stream read or counted lost (the seed's are before it).
      const m = await waitFor(
        'the whole stream accounted for',
        async () => {
          const n = await s.metrics();
          const all = metric(n, 'bullmq_exporter_events_read_total', Q) + metric(n, 'bullmq_exporter_events_lost_total', Q);
          return all === (await entriesAdded(raw, Q)) - from && n;
        },
        60_000,
        200,
      );
      const read = metric(m, 'bullmq_exporter_events_read_total', Q);
      const lost = metric(m, 'bullmq_exporter_events_lost_total', Q);
      console.log(
        `burst (cap ${maxLen}, ${perTick} per 100 ms): read ${read} lost ${lost} vs entries-added ${(await entriesAdded(raw, Q)) - from}; added ${metric(m, 'bullmq_jobs_added_total', Q)} vs ${jobs}`,
      );
      expect(read + lost).toBe((await entriesAdded(raw, Q)) - from);
      expect(lost).toBe(0);
      expect(metric(m, 'bullmq_jobs_added_total', Q)).toBe(jobs);
    },
    180_000,
  );
});
