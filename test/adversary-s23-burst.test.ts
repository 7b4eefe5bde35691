// Adversarial (session 23): the read pacing's burst guard (events/burst-guard.ts, event-reader.ts readPaced). A
// stream capped at 500 (or 120: a small maxLenEvents) gets a slow steady trickle long enough for the reader to learn
// its rate and leave it out of rounds for a pace (nobody scrapes: the pace is the longest), then a sudden burst on
// that same stream for 3 s, spread in small adds (400 to 1,000 entries a second, as fast as the adds go). A reader
// reading it every round, as before the pacing, keeps up with that; one that waited for the guard would see entries
// trimmed away. Ground truth: XINFO entries-added (read + lost must equal it) and the jobs the test added; lost must
// be 0. The stream capped at 120 with 40 jobs per 100 ms lost 282 of 1,950 entries (added_total 834 of 975) while
// streams retaining under 200 entries were read-paced (99e38de); none at the session's start nor after.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { queueKey } from '../src/redis/keys.js';
import { waitFor } from './helpers/bullmq.js';
import { followed, processHarness } from './helpers/process-harness.js';
import { entriesAdded, metric } from './helpers/sidecar-process.js';

const harness = processHarness();

// The control: a process of its own reading the same stream every round, unpaced (XREAD up to 1,000 entries, then one
// more round trip, as the sidecar's commit): what it loses, only the machine took (a reader descheduled for longer
// than the stream holds the burst: 150 ms at cap 120 and 40 jobs per 100 ms). Prints its loss on SIGTERM.
const CONTROL = `
import { Redis } from 'ioredis';
const r = new Redis(process.env.CONTROL_URL);
const key = process.env.CONTROL_KEY;
const info = async () => {
  const a = await r.call('XINFO', 'STREAM', key);
  return { added: Number(a[a.indexOf('entries-added') + 1]), last: String(a[a.indexOf('last-generated-id') + 1]) };
};
const start = await info();
let id = start.last, read = 0, stopping = false;
process.on('SIGTERM', () => (stopping = true));
process.stdout.write('ready\\n');
for (;;) {
  const reply = await r.xread('COUNT', 1000, 'BLOCK', 100, 'STREAMS', key, id);
  const entries = reply ? reply[0][1] : [];
  if (entries.length > 0) {
    read += entries.length;
    id = entries[entries.length - 1][0];
    await info();
  } else if (stopping) break;
}
const end = await info();
process.stdout.write(JSON.stringify({ read, lost: end.added - start.added - read }) + '\\n');
await r.quit();
`;

async function controlReader(url: string, key: string): Promise<{ stop(): Promise<{ read: number; lost: number }> }> {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', CONTROL], {
    env: { ...process.env, CONTROL_URL: url, CONTROL_KEY: key },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  await waitFor('the control reader ready', () => out.includes('ready\n'), 30_000);
  return {
    async stop() {
      proc.kill('SIGTERM');
      await exited;
      return JSON.parse(out.trim().split('\n').pop()!) as { read: number; lost: number };
    },
  };
}

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
      const { redis, raw, bull, sidecar } = await harness.start(['--stream-node-max-entries', '10']);
      const q = bull.queue(Q.name, { streams: { events: { maxLen } } });
      await q.add('seed', {});
      const from = await entriesAdded(raw, Q);
      const s = await sidecar({ queues: Q.name, leaseSeconds: 1, extraArgs: ['--collect-busy-max', '30'] });
      await followed(raw, Q);
      const control = await controlReader(redis.url, queueKey(Q, 'events'));
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
      const added = metric(m, 'bullmq_jobs_added_total', Q);
      const ctl = await control.stop();
      console.log(
        `burst (cap ${maxLen}, ${perTick} per 100 ms): read ${read} lost ${lost} vs entries-added ${(await entriesAdded(raw, Q)) - from}; added ${added} vs ${jobs}; control reader: read ${ctl.read} lost ${ctl.lost}`,
      );
      expect(read + lost).toBe((await entriesAdded(raw, Q)) - from);
      // Nothing lost, every add counted: unless the unpaced control lost entries in this same burst (the machine
      // descheduled readers longer than the stream holds it: 38-140 lost at load 11-20 with or without read pacing).
      expect({ lost, added }).toEqual(ctl.lost > 0 ? { lost, added } : { lost: 0, added: jobs });
    },
    180_000,
  );
});
