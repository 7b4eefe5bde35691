// The lifecycle state machine against recorded BullMQ event streams. Expected values are derived by hand from
// the entry ids in the fixtures (the derivation is in the comments), not from running the code.
import { describe, expect, it } from 'vitest';
import { QueueAccounting, type QueueEventStats } from '../src/events/accounting.js';
import { EVENT_BUCKETS_SECONDS, bucketIndex } from '../src/events/buckets.js';
import { LIFECYCLE_DEFAULTS, QueueLifecycle, toEntry, type InFlightBudget, type LifecycleOptions, type StreamEntry } from '../src/events/lifecycle.js';
import { loadEventFixture } from './helpers/event-fixtures.js';

function run(entries: StreamEntry[], opts: Partial<LifecycleOptions> = {}, chunk = entries.length): { stats: QueueEventStats; machine: QueueLifecycle } {
  const acc = new QueueAccounting();
  const machine = new QueueLifecycle(acc, { ...LIFECYCLE_DEFAULTS, ...opts });
  for (let i = 0; i < entries.length; i += chunk) {
    machine.apply(entries.slice(i, i + chunk), i + chunk >= entries.length);
  }
  return { stats: acc.toStats(), machine };
}

function counters(s: QueueEventStats, jobName = ''): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of s.counters) if (c.jobName === jobName) out[c.counter] = c.value;
  return out;
}

function hist(s: QueueEventStats, histogram: string, label: string, jobName = ''): { count: number; sumMs: number } {
  const h = s.histograms.find((x) => x.histogram === histogram && x.label === label && x.jobName === jobName);
  return { count: h?.count ?? 0, sumMs: Math.round((h?.sumSeconds ?? 0) * 1000) };
}

describe('bucket layout', () => {
  it('runs from 5 ms to at least 6 h, strictly increasing, with le semantics', () => {
    expect(EVENT_BUCKETS_SECONDS[0]).toBe(0.005);
    expect(EVENT_BUCKETS_SECONDS.at(-1)).toBeGreaterThanOrEqual(6 * 3600);
    for (let i = 1; i < EVENT_BUCKETS_SECONDS.length; i++) expect(EVENT_BUCKETS_SECONDS[i]).toBeGreaterThan(EVENT_BUCKETS_SECONDS[i - 1] as number);
    expect(bucketIndex(0)).toBe(0);
    expect(bucketIndex(5)).toBe(0);
    expect(bucketIndex(6)).toBe(1);
    expect(bucketIndex(21_600_000)).toBe(EVENT_BUCKETS_SECONDS.length - 1);
    expect(bucketIndex(21_600_001)).toBe(EVENT_BUCKETS_SECONDS.length);
  });
});

describe('research §2.3 stream: every path of one queue', () => {
  const entries = loadEventFixture('research-evq');

  const expectEvq = (s: QueueEventStats) => {
    // added: jobs 1–10, custom-1, 14, 15. completed: 3 4 8 9 custom-1 5 2 1 14. failed (terminal): 7 and 6.
    // retried: 6 (two backoffs) and 7 (one immediate). stalled: 1. deduplicated: the second D1 add.
    expect(counters(s)).toEqual({ added: 13, completed: 9, failed: 2, retried: 3, stalled: 1, deduplicated: 1 });
    // first takes: 1 578−330=248, 2 784131−max(due 784084, 782585)=47, 3 628−586=42, 4 653−587=66, 5 745−588=157,
    // 6 675−589=86, 7 678−591=87, 8 680−592=88, 9 700−592=108, custom-1 722−595=127, 14 745−743=2.
    expect(hist(s, 'wait', 'first')).toEqual({ count: 11, sumMs: 1058 });
    // retries: 1 after its stall 785631−785630=1; 6: 783056−due 782977=79 and 783358−due 783356=2; 7: 744−679=65.
    expect(hist(s, 'wait', 'retry')).toEqual({ count: 4, sumMs: 147 });
    // 1: 22, 2: 22, 3: 25, 4: 22, 5: 22, 8: 20, 9: 22, custom-1: 22, 14: 24 (the stalled attempt of 1 is not observed).
    expect(hist(s, 'processing', 'completed')).toEqual({ count: 9, sumMs: 201 });
    // 6: 678−675=3 and 783057−783056=1; 7: 679−678=1.
    expect(hist(s, 'processing', 'retried')).toEqual({ count: 3, sumMs: 5 });
    expect(hist(s, 'processing', 'failed')).toEqual({ count: 2, sumMs: 2 });
    // 1 3323, 2 1568, 3 67, 4 88, 5 179, 8 108, 9 130, custom-1 149, 14 26.
    expect(hist(s, 'e2e', 'completed')).toEqual({ count: 9, sumMs: 5638 });
    expect(hist(s, 'e2e', 'failed')).toEqual({ count: 2, sumMs: 770 + 154 });
    expect(s.reader).toMatchObject({ unmatched: 0, evicted: 0 });
  };

  it('derives every counter and histogram', () => {
    const { stats, machine } = run(entries);
    expectEvq(stats);
    // cumulative buckets of the first-take waits {2, 42, 47, 66, 86, 87, 88, 108, 127, 157, 248}
    const first = stats.histograms.find((h) => h.histogram === 'wait' && h.label === 'first');
    expect(first?.buckets.slice(0, 7)).toEqual([1, 1, 1, 3, 7, 11, 11]);
    expect(first?.buckets.at(-1)).toBe(11);
    // jobs still in flight: 10 (delayed dedup) only; 15 was removed.
    expect(machine.inFlight).toBe(1);
  });

  it('gives the same result for every split into read batches (stall look-ahead across batches)', () => {
    for (let chunk = 1; chunk <= entries.length; chunk++) expectEvq(run(entries, {}, chunk).stats);
  });

  it('never reports a held `waiting prev=active` as applied until the next entry decides it', () => {
    const stallAt = entries.findIndex((e) => e.fields.event === 'stalled');
    const acc = new QueueAccounting();
    const machine = new QueueLifecycle(acc);
    machine.apply(entries.slice(0, stallAt), false); // ends with `waiting prev=active` of job 1
    expect(machine.takeApplied()).toEqual({ id: entries[stallAt - 2]?.id, count: stallAt - 1 });
    machine.apply(entries.slice(stallAt), true);
    expect(machine.takeApplied()).toEqual({ id: entries.at(-1)?.id, count: entries.length - stallAt + 1 });
    expect(acc.toStats().counters.find((c) => c.counter === 'stalled')?.value).toBe(1);
  });

  it('labels by job name up to the cap and folds the rest into __other__', () => {
    const { stats } = run(entries, { jobNameLabel: true, maxJobNames: 3 });
    expect(counters(stats, 'stall-me')).toEqual({ added: 1, completed: 1, stalled: 1 });
    expect(counters(stats, 'delayed-1')).toEqual({ added: 1, completed: 1 });
    expect(counters(stats, 'normal-1')).toEqual({ added: 1, completed: 1 });
    expect(counters(stats, '__other__')).toEqual({ added: 10, completed: 6, failed: 2, retried: 3, deduplicated: 1 });
    expect(new Set(stats.counters.map((c) => c.jobName))).toEqual(new Set(['stall-me', 'delayed-1', 'normal-1', '__other__']));
  });

  it('counts attempt ends whose start it never saw as unmatched, and still counts the outcome', () => {
    // Reader starts at …653-0, the completion of job 3 whose `active` (…628) it never saw.
    const fromCompletion = run(entries.slice(entries.findIndex((e) => e.id === '1795485782653-0'))).stats;
    expect(fromCompletion.reader.unmatched).toBe(1);
    expect(counters(fromCompletion)).toMatchObject({ added: 2, completed: 9, failed: 2, retried: 3, stalled: 1 });
    expect(hist(fromCompletion, 'processing', 'completed').count).toBe(8);
    // Reader starts at …678-0, job 6's first backoff `delayed`: a job never seen added is decided a retry
    // whose start was missed (unmatched); with 6's second backoff and 7's retry, three retries.
    const fromBackoff = run(entries.slice(entries.findIndex((e) => e.id === '1795485782678-0'))).stats;
    expect(fromBackoff.reader.unmatched).toBe(1);
    expect(counters(fromBackoff).retried).toBe(3);
  });

  it('decides an unmatched `delayed` like an unmatched `waiting prev=active`: a retry unless its `added` was seen', () => {
    const e = (ms: number, ...f: string[]) => toEntry(`${ms}-0`, f);
    // Jobs r (backoff) and i (immediate retry) were active before the reader started; d is a delayed add,
    // then its delay is changed; x is a delayed add whose `added` the reader missed -- indistinguishable
    // from r, and counted the same way.
    const { stats } = run([
      e(1000, 'event', 'delayed', 'jobId', 'r', 'delay', '1500'),
      e(1001, 'event', 'waiting', 'jobId', 'i', 'prev', 'active'),
      e(1002, 'event', 'added', 'jobId', 'd', 'name', 'n'),
      e(1002, 'event', 'delayed', 'jobId', 'd', 'delay', '3000'),
      e(1003, 'event', 'delayed', 'jobId', 'd', 'delay', '4000'),
      e(1500, 'event', 'waiting', 'jobId', 'r', 'prev', 'delayed'),
      e(1600, 'event', 'active', 'jobId', 'r', 'prev', 'waiting'),
      e(1650, 'event', 'completed', 'jobId', 'r', 'prev', 'active'),
    ]);
    expect(counters(stats)).toEqual({ added: 1, retried: 2, completed: 1 });
    // r's and i's attempts started unseen; r's completion closes an attempt whose start was seen.
    expect(stats.reader.unmatched).toBe(2);
    expect(hist(stats, 'wait', 'retry')).toEqual({ count: 1, sumMs: 100 });
    expect(hist(stats, 'processing', 'retried').count).toBe(0);
  });
});

describe('recorded scenarios', () => {
  it('stall beyond maxStalledCount: the deferred failure is a failed attempt after a retry take', () => {
    const { stats } = run(loadEventFixture('research-stall-limit'));
    expect(counters(stats)).toEqual({ added: 1, stalled: 1, failed: 1 });
    expect(hist(stats, 'wait', 'first')).toEqual({ count: 1, sumMs: 846746 - 846120 });
    expect(hist(stats, 'wait', 'retry')).toEqual({ count: 1, sumMs: 1 });
    expect(hist(stats, 'processing', 'failed')).toEqual({ count: 1, sumMs: 8 });
    expect(hist(stats, 'processing', 'completed').count + hist(stats, 'processing', 'retried').count).toBe(0);
    expect(hist(stats, 'e2e', 'failed')).toEqual({ count: 1, sumMs: 849890 - 846120 });
  });

  it('flow: the parent becomes eligible when its children finish', () => {
    const { stats, machine } = run(loadEventFixture('flow'));
    expect(counters(stats)).toEqual({ added: 3, completed: 3 });
    // children: 465−457=8, 471−457=14; parent: released and taken at 472 → 0.
    expect(hist(stats, 'wait', 'first')).toEqual({ count: 3, sumMs: 22 });
    // children 6 and 1, parent 1; e2e: 14, 15 and the parent 473−457=16.
    expect(hist(stats, 'processing', 'completed')).toEqual({ count: 3, sumMs: 8 });
    expect(hist(stats, 'e2e', 'completed')).toEqual({ count: 3, sumMs: 45 });
    expect(machine.inFlight).toBe(0);
  });

  it('manual rate-limit re-queue: indistinguishable from an immediate retry on the stream, counted as one', () => {
    const { stats } = run(loadEventFixture('rate-limit'));
    expect(counters(stats)).toEqual({ added: 1, retried: 1, completed: 1 });
    expect(hist(stats, 'wait', 'first')).toEqual({ count: 1, sumMs: 7 });
    expect(hist(stats, 'wait', 'retry')).toEqual({ count: 1, sumMs: 200 });
    expect(hist(stats, 'processing', 'retried')).toEqual({ count: 1, sumMs: 1 });
    expect(hist(stats, 'e2e', 'completed')).toEqual({ count: 1, sumMs: 209 });
  });

  it('a trailing `waiting prev=active` at the end of the stream is a retry, not a pending stall', () => {
    const entries = loadEventFixture('rate-limit');
    const cut = entries.findIndex((e) => e.fields.prev === 'active') + 1;
    const acc = new QueueAccounting();
    const machine = new QueueLifecycle(acc);
    machine.apply(entries.slice(0, cut), true);
    expect(machine.takeApplied()).toEqual({ id: entries[cut - 1]?.id, count: cut });
    expect(counters(acc.toStats())).toEqual({ added: 1, retried: 1 });
  });

  it('delays: dedup replace, promote(), changeDelay() and a processor re-delay', () => {
    const { stats } = run(loadEventFixture('delays'));
    // added: 1 (replaced and removed), 2, 3, 4, 5; the DelayedError re-delay of 5 counts as a retry.
    expect(counters(stats)).toEqual({ added: 5, completed: 4, retried: 1, deduplicated: 1 });
    // 2: 987190−due 987135=55; 3 promoted early: 745−736=9; 4 (delay changed to due 987037): 987091−987037=54; 5: 748−737=11.
    expect(hist(stats, 'wait', 'first')).toEqual({ count: 4, sumMs: 129 });
    // 5 after its re-delay: 988−due 899=89 (not 988−749, which would include the delay).
    expect(hist(stats, 'wait', 'retry')).toEqual({ count: 1, sumMs: 89 });
    expect(hist(stats, 'processing', 'retried')).toEqual({ count: 1, sumMs: 1 });
    // 2: 987190−986735=455, 3: 12, 4: 987092−986736=356, 5: 988−737=251.
    expect(hist(stats, 'e2e', 'completed')).toEqual({ count: 4, sumMs: 1074 });
  });

  it('job.retry() of a failed job: a second run taken as a retry, its end-to-end counted from the retry', () => {
    const { stats, machine } = run(loadEventFixture('manual-retry'));
    expect(counters(stats)).toEqual({ added: 2, failed: 1, completed: 1 });
    expect(hist(stats, 'wait', 'first')).toEqual({ count: 1, sumMs: 5 });
    expect(hist(stats, 'wait', 'retry')).toEqual({ count: 1, sumMs: 1 });
    expect(hist(stats, 'e2e', 'failed')).toEqual({ count: 1, sumMs: 7 });
    expect(hist(stats, 'e2e', 'completed')).toEqual({ count: 1, sumMs: 2 }); // waiting prev=failed at …232, completed at …234
    expect(machine.inFlight).toBe(0); // 2 was removed
  });
});

describe('bounded in-flight map', () => {
  const e = (ms: number, seq: number, ...f: string[]) => toEntry(`${ms}-${seq}`, f);

  it('evicts beyond the cap, oldest first, and counts it', () => {
    const entries = [
      e(1000, 0, 'event', 'added', 'jobId', 'a', 'name', 'n'),
      e(1001, 0, 'event', 'added', 'jobId', 'b', 'name', 'n'),
      e(1002, 0, 'event', 'added', 'jobId', 'c', 'name', 'n'),
      e(1003, 0, 'event', 'active', 'jobId', 'c', 'prev', 'waiting'),
      e(1010, 0, 'event', 'completed', 'jobId', 'a', 'returnvalue', '1', 'prev', 'active'),
      e(1011, 0, 'event', 'completed', 'jobId', 'c', 'returnvalue', '1', 'prev', 'active'),
    ];
    const { stats, machine } = run(entries, { maxInFlight: 2 });
    expect(stats.reader).toMatchObject({ evicted: 1, unmatched: 1 });
    expect(counters(stats)).toEqual({ added: 3, completed: 2 });
    expect(hist(stats, 'processing', 'completed')).toEqual({ count: 1, sumMs: 8 });
    expect(machine.inFlight).toBe(1); // b
  });

  it('shares one in-flight budget across queues: the queue that adds beyond it evicts its own oldest', () => {
    const budget: InFlightBudget = { max: 3, used: 0 };
    const accA = new QueueAccounting();
    const accB = new QueueAccounting();
    const a = new QueueLifecycle(accA, LIFECYCLE_DEFAULTS, [], budget);
    const b = new QueueLifecycle(accB, LIFECYCLE_DEFAULTS, [], budget);
    const add = (m: QueueLifecycle, ms: number, jobId: string) => m.apply([e(ms, 0, 'event', 'added', 'jobId', jobId, 'name', 'n')], true);
    add(a, 1000, 'a1');
    add(a, 1001, 'a2');
    add(b, 1002, 'b1');
    expect({ a: a.inFlight, b: b.inFlight, used: budget.used }).toEqual({ a: 2, b: 1, used: 3 });
    add(b, 1003, 'b2'); // full: b evicts b1, not a1 (older, but a's)
    expect({ a: a.inFlight, b: b.inFlight, used: budget.used }).toEqual({ a: 2, b: 1, used: 3 });
    expect([accA.toStats().reader.evicted, accB.toStats().reader.evicted]).toEqual([0, 1]);
    add(a, 1004, 'a3'); // a evicts a1
    expect([accA.toStats().reader.evicted, accB.toStats().reader.evicted]).toEqual([1, 1]);
    // A job that finishes, and a reset queue, give their room back: nothing more is evicted.
    a.apply([e(1005, 0, 'event', 'removed', 'jobId', 'a2', 'prev', 'wait')], true);
    add(b, 1006, 'b3');
    expect({ a: a.inFlight, b: b.inFlight, used: budget.used }).toEqual({ a: 1, b: 2, used: 3 });
    a.resetJobs();
    add(b, 1007, 'b4');
    expect({ a: a.inFlight, b: b.inFlight, used: budget.used }).toEqual({ a: 0, b: 3, used: 3 });
    expect([accA.toStats().reader.evicted, accB.toStats().reader.evicted]).toEqual([1, 1]);
    // A queue keeps the job it just added even when the others hold the whole budget.
    const c = new QueueLifecycle(new QueueAccounting(), LIFECYCLE_DEFAULTS, [], budget);
    add(c, 1008, 'c1');
    expect({ c: c.inFlight, used: budget.used }).toEqual({ c: 1, used: 4 });
  });

  it('evicts jobs idle longer than the age limit (stream time, looked at every 1024 events)', () => {
    const entries = [e(1000, 0, 'event', 'added', 'jobId', 'old', 'name', 'n')];
    for (let i = 0; i < 1100; i++) entries.push(e(5000, i, 'event', 'added', 'jobId', `new-${i}`, 'name', 'n'));
    const { stats, machine } = run(entries, { maxInFlightAgeMs: 3000 });
    expect(stats.reader.evicted).toBe(1);
    expect(machine.inFlight).toBe(1100);
  });
});

describe('accounting hash', () => {
  it('round-trips through the persisted hash, including job names with separators', () => {
    const acc = new QueueAccounting();
    acc.count('completed', 'a|b');
    acc.observe('wait', 'first', 'a|b', 1234);
    acc.reader('read', 7);
    const fields = acc.dirtyFields();
    const hash: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) hash[fields[i] as string] = fields[i + 1] as string;
    const back = QueueAccounting.fromHash(hash);
    expect(back.toStats()).toEqual(acc.toStats());
    expect(back.jobNames()).toEqual(new Set());
    expect(acc.toStats().histograms[0]).toMatchObject({ jobName: 'a|b', count: 1, sumSeconds: 1.234 });
    expect(acc.toStats().reader.read).toBe(7);
  });
});
