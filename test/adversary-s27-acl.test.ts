// Adversary s27: the events commit's conversion of a wide state hash into a hash table, under Redis ACL users. Its
// first form (OBJECT ENCODING, a 4,097-byte field, HDEL) failed both cases below: the documented sidecar rules
// (docs/security.md) grant neither OBJECT nor HDEL, and Redis logs a denied command in ACL LOG even when the script
// pcall()s it; and a user given OBJECT (+@read) but not HDEL had the script stop after it wrote a batch's accounting
// but not its cursor, so the reader applied the batch twice (alpha: 15 completions of 8). The commit now asks only HLEN
// and HSETNX (both in the documented rules), in pcall, before the queue's fields are written; a user refused them is
// tested at the script level in adversary-s27-widen.test.ts (the sidecar itself needs both elsewhere).
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveSidecarConfig } from '../src/config/sidecar-config.js';
import { createLogger } from '../src/log/logger.js';
import { createSidecar } from '../src/sidecar/create-sidecar.js';
import { waitFor } from './helpers/bullmq.js';
import { documentedAcl } from './helpers/documented-acl.js';
import { parsePromText, seriesKey, type Series } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;
let admin: Redis;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startTestRedis({ password: 'admin-secret' });
  admin = redis.client();
  await admin.call('ACL', 'SETUSER', ...documentedAcl('queuelens-workers', 'workers-secret'));
});

afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
  await redis?.stop();
});

const NAMES = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot'];
const COUNTED = [
  'bullmq_jobs_added_total',
  'bullmq_jobs_completed_total',
  'bullmq_job_wait_seconds_count',
  'bullmq_job_processing_seconds_count',
  'bullmq_job_e2e_seconds_count',
];
/** Per job name of the workload, each COUNTED series summed over its other labels, as `a/b/c/d/e` (the warm-up job is
 * left out: whether its add is counted depends on whether the queue is newer than the reader's installation). */
const perName = (m: Series, queue: string) =>
  Object.fromEntries(
    NAMES.map((n) => {
      const v = (metric: string) =>
        [...m.entries()]
          .filter(([k]) => k.startsWith(`${metric}{`) && k.includes(`job_name="${n}"`) && k.includes(`queue="${queue}"`))
          .reduce((a, [, x]) => a + x, 0);
      return [n, COUNTED.map(v).join('/')];
    }),
  );

/**
 * Runs the sidecar as `user` and a busy workload (several job names, so the queue's state hash grows past the 32
 * fields at which the commit widens it, and batches write more than 8 fields); returns the ground truth, what the
 * sidecar exported once its reader had caught up, and the state hash.
 */
async function busyWorkload(user: string, queueName: string) {
  const connection = { host: '127.0.0.1', port: redis.port, username: 'queuelens-workers', password: 'workers-secret', maxRetriesPerRequest: null };
  const queue = new Queue(queueName, { connection });
  closers.push(() => queue.close());
  const config = resolveSidecarConfig({
    redisUrl: `redis://${user}:sidecar-secret@127.0.0.1:${redis.port}`,
    prefixes: 'bull',
    collectInterval: '1',
    discoveryInterval: '1',
    logLevel: 'silent',
    jobNameLabel: 'true',
  });
  const s = await createSidecar(config, createLogger({ level: 'silent' }));
  closers.push(() => s.close());
  await queue.add('warm-up', {});
  await s.start();
  const metrics = async () => parsePromText((await s.app.inject({ url: '/metrics' })).body);
  await waitFor(
    'queue followed',
    async () => (await metrics()).has(seriesKey('bullmq_exporter_events_lag_seconds', { prefix: 'bull', queue: queueName })),
    30_000,
  );
  await admin.call('ACL', 'LOG', 'RESET');

  // Ground truth: 6 job names x 8 jobs added while the reader follows, every one completed (the warm-up too).
  await queue.addBulk(NAMES.flatMap((name) => Array.from({ length: 8 }, (_, i) => ({ name, data: { i } }))));
  const worker = new Worker(queueName, async () => 'ok', { connection, concurrency: 4 });
  worker.on('error', () => undefined);
  closers.push(() => worker.close());
  const added = NAMES.length * 8;
  await waitFor('the jobs to finish', async () => (await queue.getJobCounts('completed')).completed === added + 1, 30_000);
  const stream = `bull:${queueName}:events`;
  const hash = `queuelens:events:q:bull:${queueName}`;
  // The reader has committed the stream's last entry, and the exposition shows at least every completion.
  await waitFor(
    'reader caught up',
    async () => {
      const info = (await admin.call('XINFO', 'STREAM', stream)) as unknown[];
      const last = info[info.indexOf('last-generated-id') + 1];
      return (
        (await admin.hget(hash, 'r|cursor')) === last &&
        Object.values(perName(await metrics(), queueName)).every((v) => v.split('/').every((x) => Number(x) >= 8))
      );
    },
    30_000,
  );
  const m = await metrics();
  const aclLog = (await admin.call('ACL', 'LOG')) as unknown[];
  // Stopped here: the next workload's sidecar (same own prefix) must be the only reader.
  await worker.close();
  await s.close();
  return {
    truth: Object.fromEntries(NAMES.map((n) => [n, COUNTED.map(() => 8).join('/')])),
    exported: perName(m, queueName),
    fields: Object.keys(await admin.hgetall(hash)),
    aclLog,
  };
}

describe('adversary s27: the commit widen under ACL users', () => {
  it('the documented sidecar rules: exact counts and no denial in ACL LOG once a busy queue is committed', async () => {
    await admin.call('ACL', 'SETUSER', ...documentedAcl('queuelens-sidecar', 'sidecar-secret'));
    const r = await busyWorkload('queuelens-sidecar', 'acl-doc');
    // The widen's conditions were met: a state hash past 32 fields.
    expect(r.fields.length).toBeGreaterThanOrEqual(32);
    expect(r.exported).toEqual(r.truth);
    // Nothing but accounting, and the conversion's one field where a commit found the hash wide.
    expect(r.fields.filter((f) => f.startsWith('x|') && f !== 'x|table')).toEqual([]);
    // docs/security.md: "checks ... that Redis's ACL LOG records no denial" (a pcall()ed command is still logged).
    expect(r.aclLog).toEqual([]);
  }, 90_000);
});
