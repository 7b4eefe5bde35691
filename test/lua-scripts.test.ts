// The typed boundary to Lua (src/redis/lua-scripts.ts) against a real Redis: every script runs through its
// wrapper on keys written here by hand, and each field of its decoded reply is compared, by name, with what
// those keys hold. A script whose reply layout changes without its decoder (a field added, two swapped) fails
// here, because every field of the crafted queue has a value no other field has.
import { readdirSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as scripts from '../src/redis/lua-scripts.js';
import { QUEUE_FIELDS, type QueueFields } from '../src/redis/lua-scripts.js';
import { bindScript, readScript, type ScriptSpec } from '../src/redis/scripts.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;
let client: Redis;

beforeAll(async () => {
  redis = await startTestRedis();
  client = redis.client();
});
afterAll(async () => {
  await redis?.stop();
});

const specs = Object.values(scripts as Record<string, unknown>).filter(
  (v): v is ScriptSpec<unknown, unknown> => typeof v === 'object' && v !== null && 'file' in v,
);

describe('Lua script wrappers', () => {
  it('every script file has exactly one wrapper', () => {
    const files = readdirSync(new URL('../src/redis/lua/', import.meta.url)).filter((f) => f.endsWith('.lua'));
    expect(specs.map((s) => s.file).sort()).toEqual(files.sort());
  });

  it("get-queue-states: the header's field list is the decoder's", () => {
    const header = /Output:[\s\S]*?each qi is the comma-separated list\s+([\s\S]*?)\n\s+One string/.exec(readScript('get-queue-states-n.lua').lua)?.[1];
    expect(header?.split(',').map((f) => f.trim())).toEqual([...QUEUE_FIELDS]);
  });

  it('get-queue-states: every field decodes, by name, to what the crafted queue holds', async () => {
    const b = 'lua:{q}:';
    const other = 'lua:{q}:broken:';
    await client.del(...(await client.keys('lua:*')).concat('none'));
    const T_HEAD = 1_700_000_000_001;
    const T_ACTIVE = 1_700_000_000_002;
    // Distinct values: waiting 14, active 10 (5 locks checked: 3 orphaned, 2 owners), prioritized 4, delayed 12 of
    // which 9 are overdue, waiting-children 6, completed 7, failed 8, limiter count 11, global max 13, not paused.
    await client.hset(`${b}meta`, 'version', 'bullmq:6.7.0', 'max', 13);
    const waitIds = Array.from({ length: 14 }, (_, i) => `w${i}`);
    await client.lpush(`${b}wait`, ...waitIds); // the head (right end) is w0
    await client.hset(`${b}w0`, 'timestamp', T_HEAD);
    const activeIds = Array.from({ length: 10 }, (_, i) => `a${i}`);
    await client.rpush(`${b}active`, ...activeIds); // checked: a0..a4 (left end); the oldest (right end) is a9
    await client.set(`${b}a0:lock`, 'worker-1:1');
    await client.set(`${b}a1:lock`, 'worker-2:7');
    await client.hset(`${b}a9`, 'processedOn', T_ACTIVE);
    const zadd = (key: string, n: number, score: (i: number) => number) =>
      client.zadd(`${b}${key}`, ...Array.from({ length: n }, (_, i) => [score(i), `${key}${i}`]).flat());
    await zadd('prioritized', 4, (i) => i);
    const now = Number((await client.time())[0]) * 1000;
    await zadd('delayed', 12, (i) => (i < 9 ? (now - 60_000) * 4096 + i : (now + 3_600_000) * 4096 + i));
    await zadd('waiting-children', 6, (i) => i);
    await zadd('completed', 7, (i) => i);
    await zadd('failed', 8, (i) => i);
    await client.set(`${b}limiter`, 11, 'PX', 600_000);
    // A second queue in the same call with a key of the wrong type: undefined, and only that queue.
    await client.set(`${other}wait`, 'not a list');

    const reply = await bindScript(client, scripts.getQueueStates)({ bases: [b, other], activeCheckLimit: 5 });
    const after = Number((await client.time())[0]) * 1000 + 1000;
    expect(reply.nowMs).toBeGreaterThanOrEqual(now);
    expect(reply.nowMs).toBeLessThanOrEqual(after);
    expect(reply.queues).toHaveLength(2);
    expect(reply.queues[1]).toBeUndefined();
    const q = reply.queues[0]!;
    expect(q.limiterPttl).toBeGreaterThan(13);
    expect(q.limiterPttl).toBeLessThanOrEqual(600_000);
    const expected: QueueFields = {
      metaExists: 1,
      paused: 0,
      waiting: 14,
      active: 10,
      prioritized: 4,
      delayed: 12,
      waitingChildren: 6,
      completed: 7,
      failed: 8,
      delayedOverdue: 9,
      headEligibleMs: T_HEAD,
      oldestActiveStartMs: T_ACTIVE,
      orphanedActive: 3,
      activeLocksChecked: 5,
      limiterPttl: q.limiterPttl,
      limiterCount: 11,
      globalRateMax: 13,
      lockOwners: 2,
      nextDueMs: now + 3_600_000,
      // Not every active job's lock was checked (5 of 10): one may expire at any moment.
      lockExpiresMs: reply.nowMs,
    };
    expect(q).toEqual(expected);
    // The fixture means something only while no two fields share a value.
    const values = Object.values(expected);
    expect(new Set(values).size).toBe(values.length);
  });

  it('count-orphaned-active: the page of ids without a lock', async () => {
    const b = 'lua:{p}:';
    await client.rpush(`${b}active`, 'x0', 'x1', 'x2', 'x3');
    await client.set(`${b}x3:lock`, 'w:1');
    const count = bindScript(client, scripts.countOrphanedActive);
    expect(await count({ activeKey: `${b}active`, base: b, start: -2, stop: -1 })).toBe(1); // x2 (x3 is locked)
    expect(await count({ activeKey: `${b}active`, base: b, start: 0, stop: -1 })).toBe(3);
  });

  it('the lease scripts: renew and release for the holder only; a generation above the floor', async () => {
    const renew = bindScript(client, scripts.leaseRenew);
    const release = bindScript(client, scripts.leaseRelease);
    const advance = bindScript(client, scripts.generationAdvance);
    await client.set('lua:lease', 'mine', 'PX', 10_000);
    expect(await renew({ key: 'lua:lease', token: 'theirs', ms: 60_000 })).toBe(false);
    expect(await renew({ key: 'lua:lease', token: 'mine', ms: 60_000 })).toBe(true);
    expect(await client.pttl('lua:lease')).toBeGreaterThan(10_000);
    expect(await release({ key: 'lua:lease', token: 'theirs' })).toBe(false);
    expect(await release({ key: 'lua:lease', token: 'mine' })).toBe(true);
    expect(await client.exists('lua:lease')).toBe(0);
    await client.set('lua:gen', 3);
    expect(await advance({ counterKey: 'lua:gen', floor: 41 })).toBe(42);
    expect(await advance({ counterKey: 'lua:gen', floor: 5 })).toBe(43);
  });

  it('get-queue-states: a clamped field is written as the exact integer, not in float notation', async () => {
    // Lua's own number formatting (%.14g) wrote the clamp 2^53 - 1 as 9.007199254741e+15, which decodes to
    // 9007199254741000: setGlobalRateLimit(Infinity) stores max 'Infinity', and a limiter count may be anything.
    const b = 'lua:{clamp}:';
    await client.hset(`${b}meta`, 'opts.maxLenEvents', 10_000, 'max', 'Infinity');
    await client.set(`${b}limiter`, '1e400', 'PX', 600_000);
    await client.set(`${b}x:lock`, 'w:1', 'PX', 600_000);
    await client.lpush(`${b}active`, 'x');
    await client.hset(`${b}x`, 'processedOn', '-1e400');
    const reply = await bindScript(client, scripts.getQueueStates)({ bases: [b], activeCheckLimit: 5 });
    const q = reply.queues[0]!;
    expect(q.globalRateMax).toBe(Number.MAX_SAFE_INTEGER);
    expect(q.limiterCount).toBe(Number.MAX_SAFE_INTEGER);
    expect(q.oldestActiveStartMs).toBe(-Number.MAX_SAFE_INTEGER);
    expect(q.active).toBe(1);
  });

  it('the commit makes a wide state hash a hash table, every field kept, and leaves a narrow one alone', async () => {
    // A listpack finds each field written by a scan from its start (a third of the commit's instructions with ~50
    // fields); the commit makes a hash of 32 fields or more a table with one field of 65 bytes, written once.
    const init = bindScript(client, scripts.eventsInit);
    const commit = bindScript(client, scripts.eventsCommit);
    const base = { gen: 3, graceMs: 1000, heartbeatField: 'hb|all' };
    const fieldsOf = (n: number) => Array.from({ length: n }, (_, i) => [`h|wait|first|n-${i}|`, i * 7]).flat();
    const state = async (n: number) => {
      const stream = `lua:{w${n}}:events`;
      const hash = `lua:{w${n}}:state`;
      const id = (await client.xadd(stream, '*', 'event', 'added', 'jobId', '1'))!;
      expect(await init({ gen: 3, installedAt: '0', queues: [{ hash, stream, fresh: false }] })).toEqual({ cursors: ['0-0'] });
      expect(await commit({ ...base, queues: [{ hash, stream, committedId: '0-0', cursor: id, applied: 1, fields: fieldsOf(n) }] })).toEqual([
        { lost: 0, caughtUp: true, length: 1 },
      ]);
      // The hash is looked at before a commit's fields are written: the second commit finds it wide.
      expect(await commit({ ...base, queues: [{ hash, stream, committedId: id, cursor: id, applied: 0, fields: fieldsOf(n) }] })).toEqual([
        { lost: 0, caughtUp: true, length: 1 },
      ]);
      const all = await client.hgetall(hash);
      for (let i = 0; i < n; i += 1) expect(all[`h|wait|first|n-${i}|`]).toBe(String(i * 7));
      expect(all['r|cursor']).toBe(id);
      expect(all['r|seen']).toBe('1');
      return { encoding: await client.object('ENCODING', hash), others: Object.keys(all).filter((f) => !f.startsWith('h|') && !f.startsWith('r|')) };
    };
    expect(await state(40)).toEqual({ encoding: 'hashtable', others: ['x|table'] });
    expect(await state(6)).toEqual({ encoding: 'listpack', others: [] });
    // A server whose listpack values may be longer keeps the listpack: the same fields, nothing else asked of it.
    const [, before] = (await client.config('GET', 'hash-max-listpack-value')) as [string, string];
    await client.config('SET', 'hash-max-listpack-value', '100000');
    try {
      expect(await state(41)).toEqual({ encoding: 'listpack', others: ['x|table'] });
    } finally {
      await client.config('SET', 'hash-max-listpack-value', before);
    }
  });

  it('the commit counts nothing lost when a re-created stream is read in batches, the first not caught up', async () => {
    // The reader follows a stream deleted and re-created (obliterate) and reads the new one in two batches while it
    // grows: the first commit finds entries past its cursor. Before, that commit left the loss for the next, whose
    // re-created case then counted the first batch's entries as lost too (lost 2 of 0; seen in a full-suite run).
    const stream = 'lua:{r}:events';
    const hash = 'lua:{r}:state';
    const init = bindScript(client, scripts.eventsInit);
    const commit = bindScript(client, scripts.eventsCommit);
    const add = (id: string) => client.xadd(stream, id, 'event', 'added');
    for (const id of ['1-1', '1-2', '1-3']) await add(id);
    expect(await init({ gen: 7, installedAt: '0', queues: [{ hash, stream, fresh: false }] })).toEqual({ cursors: ['0-0'] });
    const base = { gen: 7, graceMs: 1000, heartbeatField: 'hb|all' };
    const one = (committedId: string, cursor: string, applied: number) => ({ ...base, queues: [{ hash, stream, committedId, cursor, applied, fields: [] }] });
    expect(await commit(one('0-0', '1-3', 3))).toEqual([{ lost: 0, caughtUp: true, length: 3 }]);
    await client.del(stream);
    for (const id of ['2-1', '2-2', '2-3', '2-4']) await add(id);
    expect(await commit(one('1-3', '2-2', 2))).toEqual([{ lost: 0, caughtUp: false, length: 4 }]);
    expect(await commit(one('2-2', '2-4', 2))).toEqual([{ lost: 0, caughtUp: true, length: 4 }]);
    expect(await client.hmget(hash, 'r|lost', 'r|seen')).toEqual(['0', '4']);
  });

  it('the event state scripts: claim, commit, restart, forget, and which jobs are gone', async () => {
    const stream = 'lua:{e}:events';
    const hash = 'lua:{e}:state';
    const init = bindScript(client, scripts.eventsInit);
    const commit = bindScript(client, scripts.eventsCommit);
    const forget = bindScript(client, scripts.eventsForget);
    const gone = bindScript(client, scripts.eventsGone);
    const id = await client.xadd(stream, '*', 'event', 'added', 'jobId', 'j1');
    // The stream's whole history came after installedAt (0): it is read from its beginning.
    expect(await init({ gen: 5, installedAt: '0', queues: [{ hash, stream, fresh: false }] })).toEqual({ cursors: ['0-0'] });
    expect(
      await commit({
        gen: 5,
        graceMs: 1000,
        heartbeatField: 'hb|all',
        queues: [{ hash, stream, committedId: '0-0', cursor: id!, applied: 1, fields: ['c|x', 3] }],
      }),
    ).toEqual([{ lost: 0, caughtUp: true, length: 1 }]);
    expect(await client.hmget(hash, 'r|cursor', 'r|seen')).toEqual([id, '1']);
    expect(await client.hget(hash, 'c|x')).toBe('3');
    // A commit that applied entries leaves the queue open: no grace, no heartbeat (its lag ages from the commit).
    expect(await client.hmget(hash, 'r|lag_ms', 'r|grace_ms', 'r|hb')).toEqual(['0', '0', '']);
    // One that applies nothing, its stream at its end, settles it: the heartbeat vouches for it, with the grace.
    expect(
      await commit({ gen: 5, graceMs: 1000, heartbeatField: 'hb|all', queues: [{ hash, stream, committedId: id!, cursor: id!, applied: 0, fields: [] }] }),
    ).toEqual([{ lost: 0, caughtUp: true, length: 1 }]);
    expect(await client.hmget(hash, 'r|lag_ms', 'r|grace_ms', 'r|hb')).toEqual(['0', '1000', 'hb|all']);
    expect(await init({ gen: 4, installedAt: '0', queues: [{ hash, stream, fresh: false }] })).toEqual({ newerGeneration: 5 });
    await client.hset('lua:{e}:j1', 'name', 'kept');
    expect(await gone({ stream, base: 'lua:{e}:', ids: ['j1', 'j2'] })).toEqual({ lastId: id, gone: [false, true] });
    expect(await gone({ stream: 'lua:{e}:none', base: 'lua:{e}:', ids: [] })).toEqual({ lastId: '0-0', gone: [] });
    // Restart only for the owning term, and only once the stream is gone.
    const restart = bindScript(client, scripts.eventsRestart);
    expect(await restart({ hash, gen: 5, stream })).toBe(false);
    await client.del(stream);
    expect(await restart({ hash, gen: 4, stream })).toBe(false);
    expect(await restart({ hash, gen: 5, stream })).toBe(true);
    expect(await client.hmget(hash, 'r|cursor', 'r|seen', 'c|x')).toEqual(['0-0', '0', '3']);
    expect(await forget({ gen: 4, hashes: [hash] })).toEqual([false]);
    expect(await forget({ gen: 5, hashes: [hash] })).toEqual([true]);
    expect(await client.exists(hash)).toBe(0);
  });

  it("discovery-look: entries-added with the server's XADD count in one step, lengths, and which metas are BullMQ's", async () => {
    const look = bindScript(client, scripts.discoveryLook);
    const xadds = async () => Number(/cmdstat_xadd:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0);
    await client.xadd('look:a:events', '*', 'event', 'added');
    await client.xadd('look:a:events', '*', 'event', 'added');
    await client.xadd('look:a:events', 'MAXLEN', '1', '*', 'event', 'added');
    await client.set('look:c:events', 'not a stream');
    const keys = ['look:a:events', 'look:b:events', 'look:c:events'];
    const runId = /run_id:(\w+)/.exec(await client.info('server'))?.[1];
    // entries-added counts every add, trimmed or not; a stream that does not exist has had none; another type: -1.
    expect(await look({ mode: 'added', keys })).toEqual({ runId, xadds: await xadds(), values: [3, 0, -1] });
    expect(await look({ mode: 'length', keys })).toEqual({ runId: '', xadds: -1, values: [1, 0, -1] });
    await client.hset('look:a:meta', 'opts.maxLenEvents', '10000');
    await client.hset('look:b:meta', 'version', 'bullmq:6');
    await client.hset('look:c:meta', 'paused', '1');
    await client.set('look:d:meta', 'x');
    const metas = ['look:a:meta', 'look:b:meta', 'look:c:meta', 'look:d:meta', 'look:e:meta'];
    expect(await look({ mode: 'meta', keys: metas })).toEqual({ runId: '', xadds: -1, values: [1, 1, 0, 0, 0] });
    expect(await look({ mode: 'added', keys: [] })).toEqual({ runId, xadds: await xadds(), values: [] });
  });
});
