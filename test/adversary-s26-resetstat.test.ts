// Note: events/round-proof.ts, the proof named below, was tried in session 26 and reverted (6817083, 9f9dfdb); on main
// these workloads hold the real full rounds and the idle gate to the same bounds, and any later proof with them.
// Adversarial (session 26): the event reader's proof that a full round may read only the streams that moved
// (events/round-proof.ts: Redis's XADD count, read atomically with the moved streams, grew by exactly the entries read)
// against a CONFIG RESETSTAT. The proof takes "config|resetstat" among the commands after which nothing is proved;
// but Redis counts CONFIG RESETSTAT after it resets, so its own count reads 1 after every reset: once any reset
// happened since Redis started, a later one leaves that count unchanged. The XADD count after the reset is then
// compared with the one before it as if nothing had reset.
// Workload: 150 idle queues and one quiet queue followed (two read groups: the proof is used), at rest; an earlier
// reset (an operator, a monitoring tool); then one transaction: CONFIG RESETSTAT, INFO calls (any monitoring agent
// polling INFO), as many XADDs to another application's stream as Redis had counted before the reset minus one, and
// one `added` event on the quiet queue's stream. Redis's XADD count ends where it was. Ground truth: XINFO STREAM
// entries-added of the quiet queue's stream against the reader's read + lost, and the one `added` event.
import { describe, expect, it } from 'vitest';
import { waitFor } from './helpers/bullmq.js';
import { exportedAgeMs, followed, processHarness, QUIET_SLACK_MS, redisMs, redisSecondsPass } from './helpers/process-harness.js';
import { entriesAdded, metric } from './helpers/sidecar-process.js';
import { queueKey } from '../src/redis/keys.js';

const harness = processHarness();

const T = { prefix: 'bull', name: 'quiet' };

const calls = (stats: string, cmd: string) => Number(new RegExp(`^cmdstat_${cmd.replace('|', '\\|')}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0);

/**
 * Was a FINDING against the redis engineer's work in progress (round-proof.ts comparing INFO's own count): after the
 * transaction the quiet queue's `added` event was never read: 30 s of Redis's clock later (through the reader's full
 * rounds, each one a proof that held) bullmq_jobs_added_total 0 of 1, events_read_total 0 of 1,
 * bullmq_exporter_events_lag_seconds 0 at every scrape (worst scrape 17.5 s past its bound). Fixed by 4a31673 (the
 * proof counts its own ECHO); 48c6f9e, before the proof, read it at the next full round (within 3 s).
 * Engineered: the XADD count must come back exactly to the proof's base, and INFO's count past it.
 */
describe('adversary s26: a second CONFIG RESETSTAT and a quiet queue', () => {
  it('an entry added to a quiet stream in the same transaction as a CONFIG RESETSTAT is counted, or the lag says it is late', async () => {
    await resetAttack(false);
  }, 150_000);

  /**
   * Was a FINDING against 4a31673 (the proof counting its own ECHO, one per step): ECHO's count is anyone's to bring
   * back too; with as many ECHOs in the transaction as Redis had counted before the reset the entry was never read in
   * 30 s (jobs_added 0 of 1, read 0 of 1), lag 0 at every scrape (worst scrape 17.3 s past its bound). The proof was
   * reverted (6817083, 9f9dfdb); main reads it within ~1 s. Kept for any later proof built on Redis's counts.
   */
  it('the same with ECHO brought back to its count before the reset', async () => {
    await resetAttack(true);
  }, 150_000);
});

async function resetAttack(echo: boolean): Promise<void> {
  const { raw, bull, sidecar } = await harness.start();
  // An earlier reset (before the sidecar starts): from then on config|resetstat's own count reads 1.
  await raw.config('RESETSTAT');
  const others = Array.from({ length: 150 }, (_, i) => `idle-${i}`);
  for (const n of [T.name, ...others]) await bull.queue(n).add('x', {});
  const s = await sidecar({ queues: [T.name, ...others].join(','), leaseSeconds: 1 });
  await followed(raw, T);
  const base = await entriesAdded(raw, T);
  // At rest: the reader's first rounds (and proof steps) are done, the idle gate skips.
  await waitFor('the quiet queue caught up, lag 0', async () => metric(await s.metrics(), 'bullmq_exporter_events_lag_seconds', T) === 0, 30_000, 500);
  await redisSecondsPass(raw, 10);

  const stats = (await raw.info('commandstats')) as string;
  const xadds = calls(stats, 'xadd');
  const infos = calls(stats, 'info');
  expect(calls(stats, 'config|resetstat')).toBe(1);
  const tx = raw.multi();
  tx.config('RESETSTAT');
  for (let i = 0; i < infos + 200; i++) tx.info('server');
  if (echo) for (let i = 0; i < calls(stats, 'echo'); i++) tx.echo('x');
  for (let i = 0; i < xadds - 1; i++) tx.xadd('other-app:stream', '*', 'k', String(i));
  tx.xadd(queueKey(T, 'events'), 'MAXLEN', '~', '10000', '*', 'event', 'added', 'jobId', '9999', 'name', 'j');
  await tx.exec();
  const addedAt = await redisMs(raw);
  const after = (await raw.info('commandstats')) as string;
  console.log(`before the reset: xadd ${xadds}, info ${infos}; after the transaction: xadd ${calls(after, 'xadd')}, info ${calls(after, 'info')}`);

  // For 30 s of Redis's clock (several full rounds, the idle gate's reset check): every scrape that misses the
  // event must say, through its lag, that its counters may be that old.
  const until = addedAt + 30_000;
  let counted = false;
  let worst = -Infinity;
  let worstRow = '';
  while (!counted && (await redisMs(raw)) < until) {
    const m = await s.metrics();
    const at = await redisMs(raw);
    const added = metric(m, 'bullmq_jobs_added_total', T);
    const read = metric(m, 'bullmq_exporter_events_read_total', T);
    const lost = metric(m, 'bullmq_exporter_events_lost_total', T);
    const lagMs = metric(m, 'bullmq_exporter_events_lag_seconds', T) * 1000;
    counted = added === 1 && read + lost === (await entriesAdded(raw, T)) - base;
    const missedAge = counted ? 0 : at - addedAt;
    const row = `+${at - addedAt} ms: added ${added} of 1, read ${read} lost ${lost} of ${(await entriesAdded(raw, T)) - base}, lag ${lagMs} ms`;
    console.log(row);
    // The documented first read after a quiet spell (5 s) plus the longest grace (7 s) within which a caught-up
    // queue's lag stays 0, aged to the scrape by the collection's own timestamp and cycle.
    const over = missedAge - (lagMs + QUIET_SLACK_MS + exportedAgeMs(m, at));
    if (over > worst) [worst, worstRow] = [over, row];
    await new Promise((r) => setTimeout(r, 1000));
  }
  console.log(`counted: ${counted}; worst scrape ${worst} ms past its bound: ${worstRow}`);
  expect(worst).toBeLessThanOrEqual(0);
  expect(counted).toBe(true);
}
