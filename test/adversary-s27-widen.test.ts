// Adversary s27: the events commit's conversion of a listpack state hash of 32+ fields into a hash table (one field
// `x|table` of 65 bytes, longer than the default hash-max-listpack-value) under Redis configurations that change
// encodings: listpack limits, an RDB reload (DEBUG RELOAD), a replica, and a user refused the commands it uses. Every
// field the commits wrote must read back exactly, and nothing but the accounting (c|, h|, r|) and x|table may stay.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as scripts from '../src/redis/lua-scripts.js';
import { bindScript } from '../src/redis/scripts.js';
import { waitFor } from './helpers/bullmq.js';
import { documentedAcl } from './helpers/documented-acl.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;
let client: Redis;

beforeAll(async () => {
  redis = await startTestRedis({ args: ['--enable-debug-command', 'yes'] });
  client = redis.client();
});
afterAll(async () => {
  await redis?.stop();
});

const GEN = 5;

/** A followed queue: its stream, its state hash claimed for GEN, and commits of `n` fields valued by `round`. */
async function followed(c: Redis, tag: string) {
  const stream = `bull:{${tag}}:events`;
  const hash = `queuelens:events:q:{${tag}}`;
  const init = bindScript(c, scripts.eventsInit);
  const commit = bindScript(c, scripts.eventsCommit);
  await client.xadd(stream, '*', 'event', 'added', 'jobId', '0');
  expect(await init({ gen: GEN, installedAt: '0', queues: [{ hash, stream, fresh: false }] })).toEqual({ cursors: ['0-0'] });
  let cursor = '0-0';
  let seen = 0;
  const written: Record<string, string> = {};
  return {
    hash,
    written,
    async commit(fields: number, round: number) {
      const id = (await client.xadd(stream, '*', 'event', 'added', 'jobId', String(round)))!;
      const flat: Array<string | number> = [];
      for (let i = 0; i < fields; i += 1) {
        const f = `h|wait|first|n${(i * 7 + round) % 97}|job-${i % 5}`;
        const v = String(round * 1000 + i);
        flat.push(f, v);
        written[f] = v;
      }
      const applied = round === 0 ? 2 : 1;
      const reply = await commit({
        gen: GEN,
        graceMs: 1000,
        heartbeatField: 'hb|all',
        queues: [{ hash, stream, committedId: cursor, cursor: id, applied, fields: flat }],
      });
      cursor = id;
      seen += applied;
      expect(reply).toEqual([{ lost: 0, caughtUp: true, length: seen }]);
    },
    async check() {
      const all = await client.hgetall(hash);
      for (const [f, v] of Object.entries(written)) expect(all[f], f).toBe(v);
      expect(all['r|cursor']).toBe(cursor);
      expect(all['r|seen']).toBe(String(seen));
      expect(all['r|lost']).toBe('0');
      expect(Object.keys(all).filter((f) => !/^[chr]\|/.test(f) && f !== 'x|table')).toEqual([]);
      return { encoding: String(await client.object('ENCODING', hash)), fields: Object.keys(all).length };
    },
  };
}

async function withConfig<T>(settings: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const before: Record<string, string> = {};
  for (const k of Object.keys(settings)) before[k] = ((await client.config('GET', k)) as string[])[1]!;
  for (const [k, v] of Object.entries(settings)) await client.config('SET', k, v);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(before)) await client.config('SET', k, v);
  }
}

describe('adversary s27: the commit widen', () => {
  it('every field exact under listpack limits that keep, skip or force the conversion', async () => {
    const settings: Array<Record<string, string>> = [
      {},
      { 'hash-max-listpack-value': '10000' },
      { 'hash-max-listpack-value': '65' },
      { 'hash-max-listpack-value': '64' },
      { 'hash-max-listpack-entries': '0' },
      { 'hash-max-listpack-entries': '100000' },
      { 'hash-max-listpack-entries': '100000', 'hash-max-listpack-value': '100000' },
    ];
    const found: string[] = [];
    for (const [k, s] of settings.entries()) {
      await withConfig(s, async () => {
        const q = await followed(client, `cfg${k}`);
        for (let round = 0; round < 6; round += 1) await q.commit(round % 2 === 0 ? 20 : 9, round);
        const r = await q.check();
        expect(r.fields).toBeGreaterThanOrEqual(32);
        found.push(r.encoding);
      });
    }
    // Where the 65 bytes exceed the value limit the hash is a table; where they do not, it stays a listpack.
    expect(found).toEqual(['hashtable', 'listpack', 'listpack', 'hashtable', 'hashtable', 'hashtable', 'listpack']);
  });

  it('an RDB reload (DEBUG RELOAD) keeps the hash a table (its long value comes back with it), every field exact', async () => {
    const q = await followed(client, 'reload');
    for (let round = 0; round < 4; round += 1) await q.commit(20, round);
    expect((await q.check()).encoding).toBe('hashtable');
    await client.call('DEBUG', 'RELOAD');
    expect(await client.object('ENCODING', q.hash)).toBe('hashtable');
    expect((await q.check()).fields).toBeGreaterThanOrEqual(32);
    await q.commit(8, 4);
    await q.commit(30, 5);
    expect(await q.check()).toMatchObject({ encoding: 'hashtable' });
  });

  it('a replica holds the same fields', async () => {
    const replica = await startTestRedis({ args: ['--replicaof', '127.0.0.1', String(redis.port)] });
    try {
      const rc = replica.client();
      await waitFor('replica in sync', async () => /master_link_status:up/.test(await rc.info('replication')), 30_000);
      const q = await followed(client, 'replica');
      for (let round = 0; round < 5; round += 1) await q.commit(24, round);
      await q.check();
      await client.call('WAIT', '1', '0');
      expect(await rc.hgetall(q.hash)).toEqual(await client.hgetall(q.hash));
    } finally {
      await replica.stop();
    }
  });

  it('a user refused HSETNX (+@read, -hsetnx on top of the documented rules): a commit applies all or nothing', async () => {
    const rules = documentedAcl('queuelens-sidecar', 'pw').slice(1);
    await client.call('ACL', 'SETUSER', 'adv-reader', ...rules, '+@read', '-hsetnx');
    const asUser = redis.client();
    await asUser.call('AUTH', 'adv-reader', 'pw');
    // The queue's hash must live under the user's ~queuelens:* keys; its stream is an argument.
    const q = await followed(asUser, 'acl');
    await q.commit(20, 0);
    const before = await client.hgetall(q.hash);
    expect(Object.keys(before).length).toBeLessThan(32);
    // The hash is past 32 fields before this commit: the conversion is tried and refused. Either the whole commit is
    // applied, or (an error) nothing is: the caller reloads the state from the hash and reads the batch again.
    let failed: unknown;
    await q.commit(30, 1).catch((err: unknown) => (failed = err));
    const after = await client.hgetall(q.hash);
    if (failed !== undefined) expect({ error: String(failed), hash: after }).toEqual({ error: String(failed), hash: before });
    else await q.check();
  });
});
