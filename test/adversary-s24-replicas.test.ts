// Adversary (session 24): two sidecar replicas on one Redis, each scraped by its own "Prometheus" every 6 s at
// phases 3 s apart (the leader paces busy queues by the replica's looks, read through the shared demand hash, on top
// of its own), then the leader SIGKILLed mid-pace while the producer keeps adding and the survivor is scraped.
// Ground truth: the jobs the producer added (no worker: waiting = added + 1) and what Redis holds.
import { describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { followed, leaseHolder, processHarness, producer, scrapeBusy, sleepUntil } from './helpers/process-harness.js';
import { metric, type SidecarProcess } from './helpers/sidecar-process.js';

const harness = processHarness();
const Q = { prefix: 'bull', name: 'busy' };

describe('adversary s24: replicas scraped at two phases, the leader killed mid-pace', () => {
  it('counters stay within the exported lag at both replicas, never ahead, and exact after the handover', async () => {
    const { raw, bull, sidecar } = await harness.start();
    const q = bull.queue(Q.name);
    await q.add('first', {});
    const a = await sidecar({ queues: Q.name, leaseSeconds: 2 });
    await followed(raw, Q);
    const b = await sidecar({ queues: Q.name, leaseSeconds: 2 });
    const holder = await leaseHolder(raw);
    const p = producer(q, raw, 50);
    const rows: string[] = [];
    const check = async (s: SidecarProcess, label: string) => {
      const seen = await scrapeBusy(s, raw, p, Q, label);
      rows.push(seen.row);
      expect(seen.counterAgeMs).toBeLessThanOrEqual(seen.lagMs + 1000);
    };
    try {
      const start = Date.now();
      // Which process leads: the one whose /metrics says so.
      const leadA = ((await a.metrics()).get('bullmq_exporter_leader') ?? 0) === 1;
      const [leader, standby] = leadA ? [a, b] : [b, a];
      for (let i = 0; i < 10; i += 1) {
        await sleepUntil(start + i * 6000);
        await check(a, `A #${i}`);
        await sleepUntil(start + i * 6000 + 3000);
        await check(b, `B #${i}`);
      }
      // SIGKILL the leader right after a refresh point would have passed, mid-pace; keep scraping the survivor.
      leader.cli.proc.kill('SIGKILL');
      const t = Date.now();
      for (let i = 0; i < 8; i += 1) {
        await sleepUntil(t + i * 3000);
        await check(standby, `survivor #${i}`);
      }
      expect(await raw.get('ql:leader')).not.toBe(holder);
    } finally {
      await p.stop();
      console.log(rows.join('\n'));
    }
    const jobs = p.addedAt.length;
    const alive = [a, b].find((s) => s.alive())!;
    // Exact once it rests: nothing counted twice across the handover, nothing lost (the stream kept every entry).
    const m = await waitFor(
      'exact after the handover',
      async () => {
        const n = await alive.metrics();
        return (
          metric(n, 'bullmq_jobs_added_total', Q) === jobs &&
          metric(n, 'bullmq_queue_jobs', Q, { state: 'waiting' }) === (await raw.llen('bull:busy:wait')) &&
          n
        );
      },
      60_000,
      1000,
    );
    expect(metric(m, 'bullmq_queue_jobs', Q, { state: 'waiting' })).toBe(jobs + 1);
    expect(metric(m, 'bullmq_exporter_events_lost_total', Q)).toBe(0);
  }, 240_000);
});
