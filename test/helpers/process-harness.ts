// One test's world for process-level adversarial tests: a private Redis, a raw client on it, BullMQ fixtures and
// the sidecar processes started, all stopped after each test (registers its own afterEach). Plus what those tests
// ask of Redis again and again: its clock, the event lease holder, a stream's committed cursor lagging behind.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, expect } from 'vitest';
import { SCRIPT_FIELDS } from '../../src/events/accounting.js';
import type { QueueRef } from '../../src/domain/queue-ref.js';
import { ownKeys, queueKey } from '../../src/redis/keys.js';
import { BullFixtures, waitFor } from './bullmq.js';
import { startTestRedis, type TestRedis } from './redis-server.js';
import { entriesAdded, metric, startSidecarProcess, type SidecarProcess, type SidecarProcessOptions } from './sidecar-process.js';
import type { Series } from './prom-text.js';

export interface ProcessHarness {
  redis: TestRedis;
  raw: Redis;
  bull: BullFixtures;
  /** A sidecar process on this Redis (own prefix 'ql' unless told), stopped after the test. */
  sidecar(o?: Partial<SidecarProcessOptions>): Promise<SidecarProcess>;
}

export function processHarness(): { start(redisArgs?: string[]): Promise<ProcessHarness> } {
  let redis: TestRedis | undefined;
  let raw: Redis | undefined;
  let bull: BullFixtures | undefined;
  const sidecars: SidecarProcess[] = [];
  afterEach(async () => {
    await Promise.all(sidecars.splice(0).map((s) => s.stop()));
    await bull?.close();
    bull = undefined;
    raw?.disconnect();
    raw = undefined;
    await redis?.stop();
    redis = undefined;
  });
  return {
    async start(redisArgs?: string[]) {
      const r = await startTestRedis(redisArgs ? { args: redisArgs } : undefined);
      redis = r;
      raw = r.client();
      bull = new BullFixtures(r);
      return {
        redis: r,
        raw,
        bull,
        async sidecar(o = {}) {
          const s = await startSidecarProcess({ redisUrl: r.url, ownPrefix: 'ql', ...o });
          sidecars.push(s);
          return s;
        },
      };
    },
  };
}

/** Redis's clock, ms. */
export async function redisMs(raw: Redis): Promise<number> {
  const [s, us] = await raw.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** Waits until `seconds` of Redis's clock have passed (no request to any sidecar meanwhile). */
export async function redisSecondsPass(raw: Redis, seconds: number): Promise<void> {
  const from = await redisMs(raw);
  await waitFor(`${seconds} s of Redis's clock`, async () => (await redisMs(raw)) - from >= seconds * 1000, 60_000 + seconds * 2000, 500);
}

/** The event lease's holder, as Redis has it (watching it asks no sidecar for anything). */
export function leaseHolder(raw: Redis): Promise<string> {
  return waitFor('a lease holder', async () => (await raw.get(ownKeys.leader('ql'))) ?? undefined, 30_000, 100);
}

/** Waits until the lease is held by another than `was`. */
export function leaseMoved(raw: Redis, was: string): Promise<string> {
  return waitFor(
    'a new lease holder',
    async () => {
      const v = await raw.get(ownKeys.leader('ql'));
      return v !== null && v !== was && v;
    },
    30_000,
    100,
  );
}

/** Waits until the reader's committed cursor of `q` is at least `n` entries behind its stream's end. */
export function cursorBehind(raw: Redis, q: QueueRef, n: number): Promise<true> {
  return waitFor(
    `the committed cursor of ${q.name} behind its stream`,
    async () => {
      const cursor = await raw.hget(ownKeys.eventsQueue('ql', q), SCRIPT_FIELDS.cursor);
      return cursor !== null && (await raw.xrange(queueKey(q, 'events'), `(${cursor}`, '+', 'COUNT', n)).length >= n;
    },
    60_000,
    5,
  );
}

/** Waits until the reader of own prefix `own` follows `q` (its accounting hash exists). */
export function followed(raw: Redis, q: QueueRef, own = 'ql', timeoutMs = 30_000): Promise<true> {
  return waitFor(`the reader follows ${q.name}`, async () => (await raw.exists(ownKeys.eventsQueue(own, q))) === 1, timeoutMs, 200);
}

/**
 * How old a scrape's numbers may be at Redis time `now`, by the sidecar's own clocks: the time since its last
 * collection (its exported timestamp) plus that cycle's duration (the lag is taken at the read-back, within it).
 */
export function exportedAgeMs(m: Series, now: number): number {
  const collectedAt = (m.get('bullmq_exporter_last_collect_timestamp_seconds') ?? 0) * 1000;
  return now - collectedAt + (m.get('bullmq_exporter_cycle_duration_seconds') ?? 0) * 1000;
}

/**
 * The slack beyond a queue's exported lag (and the data's age) for an event its counters miss: the documented first
 * read after a quiet spell (5 s) plus the longest grace within which a caught-up queue's lag stays 0 (7 s).
 */
export const QUIET_SLACK_MS = 12_000;

/**
 * Scrapes every 500 ms until `q` is exact (its added_total is `added` and read + lost covers entries-added since
 * `base`), for at most 40 s of Redis's clock; a scrape that fails is retried. While not exact, the event written at
 * `at` is missed: its age must stay within the exported lag plus QUIET_SLACK_MS, aged by exportedAgeMs.
 */
export async function countedWithinLag(s: SidecarProcess, raw: Redis, q: QueueRef, base: number, added: number, at: number, label: string): Promise<void> {
  let worst = -Infinity;
  let worstRow = '';
  let exact = false;
  let row = '';
  while (!exact && (await redisMs(raw)) - at < 40_000) {
    const m = await s.metrics().catch(() => undefined);
    if (m) {
      const now = await redisMs(raw);
      const got = metric(m, 'bullmq_jobs_added_total', q);
      const read = metric(m, 'bullmq_exporter_events_read_total', q);
      const lost = metric(m, 'bullmq_exporter_events_lost_total', q);
      const truth = (await entriesAdded(raw, q)) - base;
      const lagMs = metric(m, 'bullmq_exporter_events_lag_seconds', q) * 1000;
      exact = got === added && read + lost === truth;
      row = `${label} +${now - at} ms: added ${got} of ${added}, read ${read} lost ${lost} of ${truth}, lag ${lagMs} ms`;
      const over = (exact ? 0 : now - at) - (lagMs + QUIET_SLACK_MS + exportedAgeMs(m, now));
      if (over > worst) [worst, worstRow] = [over, row];
    }
    if (!exact) await new Promise((r) => setTimeout(r, 500));
  }
  console.log(`${row}; worst ${worst} ms past the bound: ${worstRow}`);
  expect([label, worst <= 0, exact]).toEqual([label, true, true]);
}

/** Adds one job every `everyMs`, recording Redis's clock at each add (the same clock the lag is read against). */
export function producer(q: Queue, r: Redis, everyMs: number): { addedAt: number[]; stop(): Promise<void> } {
  const addedAt: number[] = [];
  let on = true;
  const done = (async () => {
    while (on) {
      await q.add('j', { i: addedAt.length });
      addedAt.push(await redisMs(r));
      await new Promise((res) => setTimeout(res, everyMs));
    }
  })();
  return {
    addedAt,
    async stop() {
      on = false;
      await done;
    },
  };
}

/** Resolves at local time `t` (ms), at once if past. */
export const sleepUntil = (t: number): Promise<unknown> => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));

/**
 * One scrape of `s` against what `p` added to `q` (one job added before it: waiting = added + 1): its numbers never
 * ahead of Redis, how old the waiting gauge and the counters are (the first job each one misses: its age at the
 * scrape, Redis's clock), the exported lag and whether `s` leads; `row` says it all for the log.
 */
export async function scrapeBusy(s: SidecarProcess, raw: Redis, p: ReturnType<typeof producer>, q: QueueRef, label: string) {
  const before = p.addedAt.length;
  const m = await s.metrics();
  const at = await redisMs(raw);
  const after = p.addedAt.length;
  const waiting = metric(m, 'bullmq_queue_jobs', q, { state: 'waiting' });
  const added = metric(m, 'bullmq_jobs_added_total', q);
  const lagMs = metric(m, 'bullmq_exporter_events_lag_seconds', q) * 1000;
  const leader = m.get('bullmq_exporter_leader') ?? -1;
  expect(waiting).toBeLessThanOrEqual(after + 1);
  expect(added).toBeLessThanOrEqual(after);
  const missed = (n: number) => (n < before ? at - (p.addedAt[n] as number) : 0);
  const gaugeAgeMs = missed(waiting - 1);
  const counterAgeMs = missed(added);
  const row = `${label} (leader ${leader}): waiting ${waiting} added ${added} of ${before}..${after}; gauge ${gaugeAgeMs} ms old, counters ${counterAgeMs} ms; lag ${lagMs} ms`;
  return { gaugeAgeMs, counterAgeMs, lagMs, row };
}
