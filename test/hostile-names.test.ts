// Queue names and prefixes with unicode, quotes, backslashes, newlines, braces and great length: discovery,
// collection and the exposition text stay exact and valid (checked by promtool).
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullFixtures } from './helpers/bullmq.js';
import { seriesKey } from './helpers/prom-text.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { testSidecar } from './helpers/sidecar.js';

const NAMES = ['ünïcødé-队列-🚀', 'quote"d', 'back\\slash', 'new\nline', '{braced}', 'tab\tname', 'x'.repeat(1000), 'glob*?[chars]'];
const ODD_PREFIX = 'pré"fix\\{x}';
let redis: TestRedis;
let bull: BullFixtures;

beforeAll(async () => {
  redis = await startTestRedis();
  bull = new BullFixtures(redis);
  for (const [i, name] of NAMES.entries()) {
    const q = bull.queue(name);
    for (let j = 0; j <= i; j += 1) await q.add('j', { j });
  }
  await bull.queue('plain', { prefix: ODD_PREFIX }).add('j', {});
  await bull.queue('decoy', { prefix: 'prefix' }).add('j', {}); // must not match the glob-escaped odd prefix
});

afterAll(async () => {
  await bull?.close();
  await redis?.stop();
});

describe('hostile queue names and prefixes', () => {
  it('exports every queue with exact values and valid exposition text', async () => {
    const s = await testSidecar(redis.url, { prefixes: `bull,${ODD_PREFIX}` });
    await s.refresh();
    const m = await s.scrape();
    for (const [i, name] of NAMES.entries()) {
      expect(m.get(seriesKey('bullmq_queue_jobs', { prefix: 'bull', queue: name, state: 'waiting' })), JSON.stringify(name)).toBe(i + 1);
    }
    expect(m.get(seriesKey('bullmq_queue_jobs', { prefix: ODD_PREFIX, queue: 'plain', state: 'waiting' }))).toBe(1);
    expect(s.discovery.queues()).toHaveLength(NAMES.length + 1);

    const text = (await s.app.inject({ url: '/metrics' })).body;
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if (lint.error) throw new Error('promtool not found: apt-get install -y prometheus');
    expect(lint.stdout + lint.stderr).toBe('');
    expect(lint.status).toBe(0);
    await s.close();
  });
});
