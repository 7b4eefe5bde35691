// Adversarial (session 23): a quiet queue the reader follows gets 8 jobs and is obliterated at once, then re-created
// with 12 jobs. docs/metrics.md (events_lost_total) names one known undercount: a queue obliterated and re-created
// "while no reader ran (or in one transaction), so that its deletion was never seen". Here a reader runs and sees the
// deletion (the queue leaves /metrics). Ground truth: the 20 jobs the test added while the queue was followed, and
// the entries-added of both streams (16 + obliterate's pause, then 24).
import { describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { followed, processHarness, redisSecondsPass } from './helpers/process-harness.js';
import { seriesKey } from './helpers/prom-text.js';
import { entriesAdded, metric } from './helpers/sidecar-process.js';

const harness = processHarness();
const Q = { prefix: 'bull', name: 'reborn' };

/** The counts once the re-created queue is read, with the truth they are held against. */
async function obliterateRightAfterAdds() {
  const { raw, bull, sidecar } = await harness.start();
  const q = bull.queue(Q.name);
  await q.add('seed', {}, { delay: 3_600_000 });
  const s = await sidecar();
  await followed(raw, Q);
  // Quiet for 6 s of Redis's clock: the stream is read in full rounds only.
  await redisSecondsPass(raw, 6);
  for (let i = 0; i < 8; i++) await q.add('o', { i });
  // The seed's 2 entries came before the reader; obliterate() pauses the queue first, one more entry.
  const oldEntries = (await entriesAdded(raw, Q)) - 2 + 1;
  await q.obliterate({ force: true });
  await waitFor(
    'gone from /metrics',
    async () => !(await s.metrics()).has(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: Q.name, state: 'waiting' })),
    60_000,
    200,
  );
  for (let i = 0; i < 12; i++) await q.add('n', { i });
  const newEntries = await entriesAdded(raw, Q);
  const m = await waitFor(
    'the re-created queue read',
    async () => {
      const n = await s.metrics();
      const all = metric(n, 'bullmq_exporter_events_read_total', Q) + metric(n, 'bullmq_exporter_events_lost_total', Q);
      return metric(n, 'bullmq_queue_jobs', Q, { state: 'waiting' }) === 12 && all >= newEntries && n;
    },
    60_000,
    200,
  );
  const got = {
    read: metric(m, 'bullmq_exporter_events_read_total', Q),
    lost: metric(m, 'bullmq_exporter_events_lost_total', Q),
    added: metric(m, 'bullmq_jobs_added_total', Q),
  };
  console.log(`reborn: added ${got.added} vs 20; read ${got.read} + lost ${got.lost} vs ${oldEntries} + ${newEntries}`);
  return { ...got, oldEntries, newEntries };
}

describe('adversary s23: obliterated right after adds, re-created, while a reader runs', () => {
  it('the re-created stream counted whole, the old one at most whole, nothing counted twice', async () => {
    const r = await obliterateRightAfterAdds();
    expect(r.read + r.lost).toBeGreaterThanOrEqual(r.newEntries);
    expect(r.read + r.lost).toBeLessThanOrEqual(r.oldEntries + r.newEntries);
    expect(r.added).toBeGreaterThanOrEqual(12);
    expect(r.added).toBeLessThanOrEqual(20);
  }, 120_000);

  // FINDING (open, timing-dependent, not specific to this session's pacing as far as measured): entries added after
  // the reader's last read of a stream and before obliterate() deletes it are neither read nor counted lost. Runs on
  // main (8d16d34): read 41 + lost 0 of 17 + 24 and added 20 (twice), read 38 + lost 0 and added 19 (once: one job's
  // 2 entries and the pause entry missed, silently). docs/metrics.md names only the case where no reader ran or the
  // obliteration was one transaction.
  it.skip('FINDING: every add made while the queue was followed counted, or the unread entries counted lost', async () => {
    const r = await obliterateRightAfterAdds();
    expect(r.read + r.lost).toBe(r.oldEntries + r.newEntries);
    expect(r.added + r.lost / 2).toBe(20);
  }, 120_000);
});
