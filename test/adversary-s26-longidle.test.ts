// Adversarial (session 26): the first event after a long quiet spell beside 150 idle queues (two read groups: the idle
// gate, and any proof from Redis's counts that a full round may skip quiet streams, apply). A real sidecar process:
// everything at rest for 65 s of Redis's clock (past the reader's once-a-minute round, scraped every 15 s), then one
// BullMQ add to a quiet queue. Ground truth: XINFO STREAM entries-added against read + lost, and the one job added;
// until counted, every scrape's lag must cover the job's age.
import { describe, expect, it } from 'vitest';
import { countedWithinLag, followed, processHarness, redisMs, redisSecondsPass } from './helpers/process-harness.js';
import { entriesAdded } from './helpers/sidecar-process.js';
import type { QueueRef } from '../src/domain/queue-ref.js';

const harness = processHarness();

const ref = (name: string): QueueRef => ({ prefix: 'bull', name });

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
    await countedWithinLag(s, raw, ref('long'), bases.get('long') as number, 1, at, 'after 65 s at rest');

    expect(s.alive()).toBe(true);
  }, 150_000);
});
