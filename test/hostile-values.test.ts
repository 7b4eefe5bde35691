// What one queue holds cannot blind the sidecar to the others: odd numbers (Infinity, 1e400, nan) read by the
// collector's Lua, a queue whose keys have the wrong type, huge and non-UTF-8 queue names. The good queues stay
// exact, and what is left out is counted in bullmq_exporter_queues_dropped{reason}.
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveSidecarConfig } from '../src/config/sidecar-config.js';
import { OTHER_JOB_NAME, QueueAccounting } from '../src/events/accounting.js';
import { LIFECYCLE_DEFAULTS, QueueLifecycle } from '../src/events/lifecycle.js';
import { createLogger } from '../src/log/logger.js';
import { createSidecar, type Sidecar } from '../src/sidecar/create-sidecar.js';
import { BullFixtures } from './helpers/bullmq.js';
import { parsePromText, seriesKey, type Series } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

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

async function sidecarWithLog(): Promise<{ s: Sidecar; lines: string[]; scrape: () => Promise<{ text: string; m: Series }> }> {
  const lines: string[] = [];
  const config = resolveSidecarConfig({ redisUrl: redis.url, prefixes: 'bull', collectInterval: '60', discoveryInterval: '60', logLevel: 'warn' });
  const log = createLogger({ level: 'warn', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
  const s = await createSidecar(config, log);
  const scrape = async () => {
    const res = await s.app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(200);
    return { text: res.body, m: parsePromText(res.body) };
  };
  return { s, lines, scrape };
}

const jobs = (m: Series, queue: string, state = 'waiting') => m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue, state }));
const dropped = (m: Series, reason: string) => m.get(seriesKey('bullmq_exporter_queues_dropped', { reason }));

describe('odd numbers and unreadable queues', () => {
  it('Infinity, 1e400 and nan in one queue are clamped per field; a queue of the wrong key type is skipped, counted and logged once', async () => {
    // Ground truth: what each queue was given.
    const good = bull.queue('n-good');
    for (let i = 0; i < 3; i += 1) await good.add('j', { i });

    const inf = bull.queue('n-inf');
    await inf.add('j', {});
    await inf.add('j', {});
    await inf.setGlobalRateLimit(Infinity, 1000); // BullMQ stores max as the string 'Infinity'
    expect(await redis.client().hget('bull:n-inf:meta', 'max')).toBe('Infinity');
    // A limiter window that is open, with a count Lua reads as inf.
    await redis.client().set('bull:n-inf:limiter', '1e400', 'PX', 600_000);

    // The head of wait with a timestamp Lua reads as inf, and one with nan.
    const huge = bull.queue('n-huge-ts');
    const j1 = await huge.add('j', {});
    await redis.client().hset(`bull:n-huge-ts:${j1.id}`, 'timestamp', '1e400');
    const nan = bull.queue('n-nan-ts');
    const j2 = await nan.add('j', {});
    await redis.client().hset(`bull:n-nan-ts:${j2.id}`, 'timestamp', 'nan', 'atm', 'inf');

    // Keys of the wrong type: every Lua read of this queue raises WRONGTYPE.
    const broken = bull.queue('n-broken');
    await broken.add('j', {});
    await redis.client().del('bull:n-broken:prioritized');
    await redis.client().set('bull:n-broken:prioritized', 'not a sorted set');

    const { s, lines, scrape } = await sidecarWithLog();
    await s.refresh();
    await s.refresh(); // a second collection: the unreadable queue is not logged again
    const { m } = await scrape();

    expect(m.get('bullmq_exporter_up')).toBe(1);
    expect(jobs(m, 'n-good')).toBe(3);
    expect(jobs(m, 'n-inf')).toBe(2);
    expect(jobs(m, 'n-huge-ts')).toBe(1);
    expect(jobs(m, 'n-nan-ts')).toBe(1);
    // 1e400 clamps the timestamp into the future: the job has not waited yet. nan is "no timestamp": no age.
    expect(m.get(seriesKey('bullmq_queue_oldest_waiting_age_seconds', { prefix: 'bull', queue: 'n-huge-ts' }))).toBe(0);
    expect(m.get(seriesKey('bullmq_queue_oldest_waiting_age_seconds', { prefix: 'bull', queue: 'n-nan-ts' }))).toBe(0);
    // max Infinity clamps to a limit never reached, and a limiter count of 1e400 to one that is.
    expect(m.get(seriesKey('bullmq_queue_rate_limited', { prefix: 'bull', queue: 'n-inf' }))).toBe(1);

    expect(jobs(m, 'n-broken')).toBeUndefined();
    expect(dropped(m, 'unreadable')).toBe(1);
    expect(lines.filter((l) => l.includes('cannot read this queue') && l.includes('"queue":"n-broken"'))).toHaveLength(1);

    // Repaired, it is back at the next collection and no longer counted.
    await redis.client().del('bull:n-broken:prioritized');
    await s.refresh();
    const after = (await scrape()).m;
    expect(jobs(after, 'n-broken')).toBe(1);
    expect(dropped(after, 'unreadable')).toBe(0);
    await s.close();
    for (const q of ['n-good', 'n-inf', 'n-huge-ts', 'n-nan-ts', 'n-broken']) await bull.queue(q).obliterate({ force: true });
  });
});

describe('label and exposition bounds', () => {
  it('ten queues with 100 KB names are counted, not exported; /metrics and memory stay small', async () => {
    const s0 = await sidecarWithLog();
    await s0.s.refresh();
    const baseline = (await s0.scrape()).text.length;
    await s0.s.close();

    const normal = bull.queue('l-normal');
    await normal.add('j', {});
    const long = Array.from({ length: 10 }, (_, i) => `${String(i)}${'x'.repeat(100 * 1024)}`);
    for (const name of long) await bull.queue(name).add('j', {});
    // A name at the limit is exported.
    const edge = 'é'.repeat(512); // 1024 bytes
    await bull.queue(edge).add('j', {});

    const { s, lines, scrape } = await sidecarWithLog();
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    await s.refresh();
    const { text, m } = await scrape();
    const rssAfter = process.memoryUsage().rss;
    console.log(`[hostile-values] /metrics ${baseline} B without the queues, ${text.length} B with them; RSS ${rssBefore} -> ${rssAfter} B`);

    expect(jobs(m, 'l-normal')).toBe(1);
    expect(jobs(m, edge)).toBe(1);
    for (const name of long) expect(jobs(m, name)).toBeUndefined();
    expect(dropped(m, 'name_too_long')).toBe(10);
    expect(text).not.toContain('x'.repeat(2000));
    // Two more queues than the baseline, not ten times 100 KB per series.
    expect(text.length).toBeLessThan(baseline + 2 * 20 * (1024 + 200));
    expect(lines.filter((l) => l.includes('longer than 1024 bytes'))).toHaveLength(10);
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if (lint.error) throw new Error('promtool not found: apt-get install -y prometheus');
    expect(lint.stdout + lint.stderr).toBe('');
    await s.close();
    for (const name of [...long, edge, 'l-normal']) await bull.queue(name).obliterate({ force: true });
  });

  it('a queue whose name is not UTF-8 is counted as dropped and logged as hex, and the other queues stay exact', async () => {
    const ok = bull.queue('u-ok');
    await ok.add('j', {});
    // BullMQ itself takes string names; a producer in another language can write any bytes. A copy of a real
    // queue's meta hash under a binary name is what discovery meets.
    const name = Buffer.from([0x75, 0xff, 0xfe, 0x2d, 0x71]); // 'u', invalid, invalid, '-q'
    const meta = await redis.client().hgetall('bull:u-ok:meta');
    const key = Buffer.concat([Buffer.from('bull:'), name, Buffer.from(':meta')]);
    await redis.client().hset(key, meta);

    const { s, lines, scrape } = await sidecarWithLog();
    await s.refresh();
    const { m } = await scrape();
    expect(jobs(m, 'u-ok')).toBe(1);
    expect(m.get('bullmq_exporter_up')).toBe(1);
    expect(dropped(m, 'not_utf8')).toBe(1);
    expect(lines.filter((l) => l.includes('not UTF-8') && l.includes(key.toString('hex')))).toHaveLength(1);
    await s.close();
    await redis.client().del(key);
    await ok.obliterate({ force: true });
  });

  it('names within the limit but over the total name budget are counted as exposition_size', async () => {
    // 4 queues of 1000 bytes with --max-queues 10: a budget of 1280 bytes holds one of them.
    const names = ['a', 'b', 'c', 'd'].map((c) => c.repeat(1000));
    for (const n of names) await bull.queue(n).add('j', {});
    const lines: string[] = [];
    const config = resolveSidecarConfig({
      redisUrl: redis.url,
      prefixes: 'bull',
      collectInterval: '60',
      discoveryInterval: '60',
      maxQueues: '10',
      logLevel: 'warn',
    });
    const s = await createSidecar(config, createLogger({ level: 'warn', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) }));
    await s.refresh();
    const m = parsePromText((await s.app.inject({ url: '/metrics' })).body);
    expect(jobs(m, names[0]!)).toBe(1);
    for (const n of names.slice(1)) expect(jobs(m, n)).toBeUndefined();
    expect(dropped(m, 'exposition_size')).toBe(3);
    expect(dropped(m, 'max_queues')).toBe(0);
    await s.close();
    for (const n of names) await bull.queue(n).obliterate({ force: true });
  });
});

describe('job_name label bounds', () => {
  it('a job name over 128 bytes counts under __other__, one at the limit keeps its own label', () => {
    const acc = new QueueAccounting();
    const machine = new QueueLifecycle(acc, { ...LIFECYCLE_DEFAULTS, jobNameLabel: true, maxJobNames: 20 });
    const atLimit = 'n'.repeat(128);
    const long = 'n'.repeat(100 * 1024);
    const wide = 'é'.repeat(65); // 130 bytes in 65 characters
    const names = [atLimit, long, wide, long];
    machine.apply(
      names.map((name, i) => ({ id: `${i + 1}-0`, ms: i + 1, fields: { event: 'added', jobId: String(i + 1), name, prev: undefined, delay: undefined } })),
      true,
    );
    const added = (jobName: string) => acc.toStats().counters.find((c) => c.counter === 'added' && c.jobName === jobName)?.value;
    expect(added(atLimit)).toBe(1);
    expect(added(OTHER_JOB_NAME)).toBe(3);
    expect(acc.toStats().counters.some((c) => c.jobName.length > 128)).toBe(false);
  });
});
