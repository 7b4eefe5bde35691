// Adversarial (session 23): the status history rings kept compactly (status/point-columns.ts, accounting-ring.ts)
// seen through /api/queues?history=1. A queue's backlog and delayed counts follow a sequence with runs of equal
// values broken at odd places (runs of 1 to 7, values coming back, 0 in between), one collection per step; a second
// queue is obliterated and re-created half-way; a third never moves. Ground truth: getJobCounts after each step (what
// Redis holds when the collection reads it). The history must be that sequence, or an ordered subsequence of it once
// thinned, ending with the live value.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullFixtures } from './helpers/bullmq.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

let redis: TestRedis;
let bull: BullFixtures;
beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
});
afterAll(async () => {
  await bull?.close();
  await redis?.stop();
});

interface History {
  t: number[];
  backlog: number[];
  delayed: number[];
}
interface View {
  name: string;
  history?: History;
}

/** Whether `got` is `want` with some points left out, in order. */
function subsequence(got: number[], want: number[]): boolean {
  let j = 0;
  for (const v of got) {
    while (j < want.length && want[j] !== v) j++;
    if (j === want.length) return false;
    j++;
  }
  return true;
}

describe('adversary s23: history with runs broken at odd places', () => {
  it('each queue history equals what Redis held at each collection (or an ordered part of it), ending live', async () => {
    // 50 steps, then the same runs backwards over other values: 100 collections, past the ring's 64 points.
    const first = [1, 3, 2, 7, 1, 1, 4, 2, 5, 1, 6, 2, 1, 3, 1, 7, 2, 1];
    const runs = [...first, ...[...first].reverse()];
    const values = [4, 4, 0, 9, 4, 5, 0, 0, 1, 9, 2, 2, 8, 0, 3, 4, 6, 1, 7, 7, 3, 0, 0, 5, 5, 2, 0, 1, 1, 6, 3, 3, 0, 9, 9, 2];
    const hist = bull.queue('hist');
    const reborn = bull.queue('hist-reborn');
    const still = bull.queue('hist-still');
    await still.add('x', {});
    await reborn.add('x', {});
    const s = await testSidecar(redis.url);
    const truth = { backlog: [] as number[], delayed: [] as number[], reborn: [] as number[], still: [] as number[] };
    const waiting: string[] = [];
    const delayed: string[] = [];
    let step = 0;
    for (const [r, run] of runs.entries()) {
      const target = values[r]!;
      for (let k = 0; k < run; k++) {
        // Backlog to the run's value; delayed jobs follow another pattern (grow every third step, cleared at 10).
        while (waiting.length < target) waiting.push((await hist.add('w', {})).id!);
        while (waiting.length > target) await (await hist.getJob(waiting.pop()!))!.remove();
        if (step % 3 === 0) delayed.push((await hist.add('d', {}, { delay: 3_600_000 })).id!);
        if (delayed.length >= 10) while (delayed.length > 0) await (await hist.getJob(delayed.pop()!))!.remove();
        if (step === 20) await reborn.obliterate({ force: true });
        if (step === 24)
          await reborn.addBulk([
            { name: 'y', data: {} },
            { name: 'y', data: {} },
          ]);
        await s.refresh();
        const c = await hist.getJobCounts('waiting', 'prioritized', 'delayed');
        truth.backlog.push((c.waiting ?? 0) + (c.prioritized ?? 0));
        truth.delayed.push(c.delayed ?? 0);
        const rc = await reborn.getJobCounts('waiting');
        truth.reborn.push(rc.waiting ?? 0);
        truth.still.push(1);
        step++;
      }
    }
    const body = (await s.app.inject({ url: '/api/queues?history=1' })).json() as { queues: View[] };
    const view = (name: string) => body.queues.find((q) => q.name === name)?.history;
    const h = view('hist')!;
    console.log(`${step} collections; history of ${h.t.length} points: backlog ${h.backlog.join(',')} vs ${truth.backlog.join(',')}`);
    expect(h.backlog.length).toBe(h.t.length);
    expect([...h.t].sort((a, b) => a - b)).toEqual(h.t);
    expect(h.delayed.length).toBe(h.t.length);
    if (h.t.length === step) {
      // Not thinned: every collection a point.
      expect(h.backlog).toEqual(truth.backlog);
      expect(h.delayed).toEqual(truth.delayed);
    } else {
      expect(subsequence(h.backlog, truth.backlog)).toBe(true);
      expect(subsequence(h.delayed, truth.delayed)).toBe(true);
    }
    expect(h.backlog.at(-1)).toBe(truth.backlog.at(-1));
    expect(h.delayed.at(-1)).toBe(truth.delayed.at(-1));
    // The still queue: one value all along, as many points as the moving one.
    const st = view('hist-still')!;
    expect(new Set(st.backlog)).toEqual(new Set([1]));
    // The re-created queue: its history is no longer than its life since it came back, and ends live.
    const rb = view('hist-reborn')!;
    expect(rb.backlog.at(-1)).toBe(2);
    expect(subsequence(rb.backlog, truth.reborn)).toBe(true);
    await s.close();
  });
});
