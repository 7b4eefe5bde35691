// Adversarial (session 26): the first event after a long quiet spell beside 150 idle queues (two read groups: the idle
// gate, and any proof from Redis's counts that a full round may skip quiet streams, apply). A real sidecar process:
// everything at rest for 65 s of Redis's clock (past the reader's once-a-minute round, scraped every 15 s), then one
// BullMQ add to a quiet queue. Ground truth: XINFO STREAM entries-added against read + lost, and the one job added;
// until counted, every scrape's lag must cover the job's age.
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { followed, processHarness, redisMs, redisSecondsPass } from './helpers/process-harness.js';
import { entriesAdded, metric, type SidecarProcess } from './helpers/sidecar-process.js';
import type { QueueRef } from '../src/domain/queue-ref.js';

const harness = processHarness();

const ref = (name: string): QueueRef => ({ prefix: 'bull', name });

/** As in adversary-s26-quiet: scrapes until `q` is exact, the missed job's age within the lag plus the slack. */
async function counted(s: SidecarProcess, raw: Redis, q: QueueRef, base: number, at: number, label: string): Promise<void> {
  let worst = -Infinity;
  let row = '';
  let worstRow = '';
  let exact = false;
  while (!exact && (await redisMs(raw)) - at < 40_000) {
    const m = await s.metrics().catch(() => undefined);
    if (!m) {
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    const now = await redisMs(raw);
    const added = metric(m, 'bullmq_jobs_added_total', q);
    const read = metric(m, 'bullmq_exporter_events_read_total', q) + metric(m, 'bullmq_exporter_events_lost_total', q);
    const truth = (await entriesAdded(raw, q)) - base;
    const lagMs = metric(m, 'bullmq_exporter_events_lag_seconds', q) * 1000;
    const collectedAt = (m.get('bullmq_exporter_last_collect_timestamp_seconds') ?? 0) * 1000;
    const cycleMs = (m.get('bullmq_exporter_cycle_duration_seconds') ?? 0) * 1000;
    exact = added === 1 && read === truth;
    row = `${label} +${now - at} ms: added ${added} of 1, read+lost ${read} of ${truth}, lag ${lagMs} ms`;
    const over = (exact ? 0 : now - at) - (lagMs + 12_000 + (now - collectedAt) + cycleMs);
    if (over > worst) [worst, worstRow] = [over, row];
    if (!exact) await new Promise((r) => setTimeout(r, 500));
  }
  console.log(`${row}; worst ${worst} ms past the bound: ${worstRow}`);
  expect([label, worst <= 0, exact]).toEqual([label, true, true]);
}

describe('adversary s26: the first event after a long quiet spell', () => {
  it('is counted, and the lag covers it until then', async () => {
    const { raw, bull, sidecar } = await harness.start();
    const idle = Array.from({ length: 150 }, (_, i) => `idle-${i}`);
    const quiet = ['long'];
    for (const n of [...idle, ...quiet]) await bull.queue(n).add('x', {});
    const s = await sidecar({ queues: [...idle, ...quiet].join(','), leaseSeconds: 1 });
    for (const n of quiet) await followed(raw, ref(n));
    const bases = new Map<string, number>();
    for (const n of quiet) bases.set(n, await entriesAdded(raw, ref(n)));

    // 65 s of Redis's clock at rest (scraped every 15 s, as Prometheus would), then one add.
    const until = (await redisMs(raw)) + 65_000;
    while ((await redisMs(raw)) < until) {
      await s.metrics();
      await redisSecondsPass(raw, 15);
    }
    const at = await redisMs(raw);
    await bull.queue('long').add('j', {});
    await counted(s, raw, ref('long'), bases.get('long') as number, at, 'after 65 s at rest');

    expect(s.alive()).toBe(true);
  }, 150_000);
});
