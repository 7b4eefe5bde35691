// A failure that persists is logged once a minute with its repeat count, not twice a second forever: the event
// reader retrying a pass Redis refuses every time, and connection errors that alternate.
import { Queue } from 'bullmq';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RepeatLimiter } from '../src/log/repeat-limiter.js';
import type { Sidecar } from '../src/sidecar/create-sidecar.js';
import { waitFor } from './helpers/bullmq.js';
import { monitorCommands, startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

let redis: TestRedis;
let sidecar: Sidecar | undefined;

beforeAll(async () => {
  redis = await startTestRedis();
});

afterAll(async () => {
  await sidecar?.close();
  await redis?.stop();
});

it('an event reader pass that fails every time is logged once, however often it is retried', async () => {
  const q = new Queue('wrongtype', { connection: { host: '127.0.0.1', port: redis.port } });
  await q.add('x', {});
  await q.close();
  // The queue's events key is not a stream: every XREAD naming it fails with WRONGTYPE, pass after pass.
  await redis.client().del('bull:wrongtype:events');
  await redis.client().set('bull:wrongtype:events', 'not a stream');

  let failedReads = 0;
  const monitor = await monitorCommands(redis, (args) => {
    if (args[0]?.toLowerCase() === 'xread' && args.includes('bull:wrongtype:events')) failedReads += 1;
  });
  const lines: string[] = [];
  sidecar = await testSidecar(redis.url, { logLevel: 'info', eventsLease: '1' }, lines);
  await sidecar.start();
  try {
    await waitFor('the reader retried the failing pass 8 times', () => failedReads >= 8, 60_000);
  } finally {
    monitor.stop();
  }
  const failures = lines.map((l) => JSON.parse(l) as { msg: string; err?: string }).filter((l) => l.msg.startsWith('event reader pass failed'));
  expect(failures).toHaveLength(1);
  expect(failures[0]!.err).toMatch(/WRONGTYPE/);
});

it('holds back repeats of each message for the interval, alternating ones included, and reports how many', () => {
  const limiter = new RepeatLimiter(60_000, 10);
  const logged: Array<[string, number]> = [];
  // Two alternating errors, each every 500 ms, for two minutes.
  for (let t = 0; t < 120_000; t += 250) {
    const msg = t % 500 === 0 ? 'ECONNREFUSED' : 'Connection is closed.';
    const r = limiter.check(msg, t);
    if (r.log) logged.push([msg, r.repeated]);
  }
  expect(logged).toEqual([
    ['ECONNREFUSED', 0],
    ['Connection is closed.', 0],
    ['ECONNREFUSED', 119],
    ['Connection is closed.', 119],
  ]);
  limiter.reset();
  expect(limiter.check('ECONNREFUSED', 120_000)).toEqual({ log: true, repeated: 0 });
});
