// Adversarial (session 23): very many busy queues (160: the reader's streams in several groups, the lag's grace
// 7 s) while nobody asks (pace at its slowest), some streams capped small (150 entries), then the traffic stops and
// the sidecar is scraped 5 s apart. Ground truth: the jobs added per queue (no worker: waiting = added), LLEN of
// each wait list, and XINFO entries-added of each stream.
import type { Queue } from 'bullmq';
import { describe, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { processHarness } from './helpers/process-harness.js';
import { entriesAdded, metric } from './helpers/sidecar-process.js';

const harness = processHarness();

const N = 160;

describe('adversary s23: 160 busy queues while nobody asks', () => {
  it('every queue exact once the traffic stops: waiting = LLEN, added = jobs, read + lost = entries-added, lost 0', async () => {
    const { raw, bull, sidecar } = await harness.start(['--stream-node-max-entries', '10']);
    const names = Array.from({ length: N }, (_, i) => `many-${i}`);
    const queues: Queue[] = names.map((n, i) => bull.queue(n, i % 8 === 0 ? { streams: { events: { maxLen: 150 } } } : {}));
    for (const q of queues) await q.add('seed', {});
    const from = new Map<string, number>();
    for (const n of names) from.set(n, await entriesAdded(raw, { prefix: 'bull', name: n }));
    const s = await sidecar({ queues: names.join(','), leaseSeconds: 1 });
    await waitFor('every queue followed', async () => (await raw.zcard('ql:events:queues')) === N, 60_000, 500);
    const jobs = new Map<string, number>(names.map((n) => [n, 0]));
    // 20 s of Redis's clock: each round adds one job to each of 40 queues in turn (each queue about 1 job a second).
    const t0 = Number((await raw.time())[0]);
    let round = 0;
    while (Number((await raw.time())[0]) - t0 < 20) {
      const batch = names.slice((round % 4) * 40, (round % 4) * 40 + 40);
      await Promise.all(batch.map((n, k) => queues[(round % 4) * 40 + k]!.add('j', { round }).then(() => jobs.set(n, jobs.get(n)! + 1))));
      round += 1;
      await new Promise((r) => setTimeout(r, 250));
    }
    let last = '';
    await waitFor(
      'every queue exact',
      async () => {
        const m = await s.metrics();
        const wrong: string[] = [];
        for (const n of names) {
          const q = { prefix: 'bull', name: n };
          const waiting = metric(m, 'bullmq_queue_jobs', q, { state: 'waiting' });
          const llen = await raw.llen(`bull:${n}:wait`);
          if (waiting !== llen) wrong.push(`${n} waiting ${waiting} vs ${llen}`);
          const added = metric(m, 'bullmq_jobs_added_total', q);
          if (added !== jobs.get(n)) wrong.push(`${n} added ${added} vs ${jobs.get(n)}`);
          const lost = metric(m, 'bullmq_exporter_events_lost_total', q);
          const all = metric(m, 'bullmq_exporter_events_read_total', q) + lost;
          const truth = (await entriesAdded(raw, q)) - from.get(n)!;
          if (all !== truth || lost !== 0) wrong.push(`${n} read + lost ${all} (lost ${lost}) vs ${truth}`);
        }
        last = `${wrong.length} wrong: ${wrong.slice(0, 6).join('; ')}`;
        return wrong.length === 0;
      },
      90_000,
      5000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${last}`);
    });
  }, 240_000);
});
