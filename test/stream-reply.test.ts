// The event reader's own XREAD path against a real Redis: the raw connection (redis/raw-connection.ts), its
// reply framing, and the reply parser (events/stream-reply.ts). Ground truth is the same entries read through
// ioredis and decoded the plain way: every field a string, the lifecycle's fields picked by toEntry().
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toEntry, type StreamEntry } from '../src/events/lifecycle.js';
import { decodeEntries, parseXreadReply, type RawEntry, type StreamBatch } from '../src/events/stream-reply.js';
import { createLogger } from '../src/log/logger.js';
import { RawConnection, RedisReplyError, ReplyFramer, type RawConnectionOptions } from '../src/redis/raw-connection.js';
import { LinkProxy } from './helpers/link-proxy.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

let redis: TestRedis;
let client: Redis;
const closers: Array<() => void> = [];

beforeAll(async () => {
  redis = await startTestRedis();
  client = redis.client();
});
afterAll(async () => {
  for (const close of closers.reverse()) close();
  await redis?.stop();
});

function connect(url = redis.url, log = createLogger({ level: 'silent' }), more: Partial<RawConnectionOptions> = {}): RawConnection {
  const c = new RawConnection({ url, name: 'qltest:raw', log, ...more });
  closers.push(() => c.disconnect());
  return c;
}

/** What the reader got through ioredis before: Buffers, every field decoded, toEntry() keeping its five. */
function plainDecode(reply: Array<[Buffer, RawEntry[]]> | null): StreamBatch[] {
  return (reply ?? [])
    .filter(([, raw]) => raw.length > 0)
    .map(([stream, raw]) => ({
      stream: stream.toString(),
      entries: raw.map(([id, fields]): StreamEntry =>
        toEntry(
          id.toString(),
          fields.map((f) => f.toString()),
        ),
      ),
      largest: Math.max(...raw.map(([, fields]) => fields.reduce((n, f) => n + f.length, 0))),
    }));
}

const INVALID_UTF8 = Buffer.from([0xff, 0xfe, 0x41, 0xc3]);

async function writeStreams(): Promise<string[]> {
  const [a, b, c] = ['ql:{s}:bull-like', 'ql:{s}:odd-ünïcødé', 'ql:{s}:empty'];
  await client.del(a, b, c);
  const add = (key: string, ...fields: Array<string | Buffer>) => client.xadd(key, '*', ...fields);
  await add(a, 'event', 'added', 'jobId', '1', 'name', 'send-email');
  await add(a, 'event', 'waiting', 'jobId', '1');
  await add(a, 'event', 'active', 'jobId', '1', 'prev', 'waiting');
  await add(a, 'event', 'completed', 'jobId', '1', 'returnvalue', JSON.stringify({ ok: true, n: 1 }), 'prev', 'active');
  await add(a, 'event', 'failed', 'jobId', '2', 'failedReason', 'boom\r\n$5\r\n*1\r\n', 'prev', 'active');
  await add(a, 'event', 'delayed', 'jobId', '3', 'delay', '1795499906877');
  await add(a, 'event', 'waiting', 'jobId', '2', 'prev', 'active');
  await add(a, 'event', 'stalled', 'jobId', '2');
  await add(a, 'event', 'progress', 'jobId', '4', 'data', '{"pct":50}');
  await add(a, 'event', 'drained');
  await add(a, 'event', 'retries-exhausted', 'jobId', '2', 'attemptsMade', '3');
  await add(a, 'event', 'waiting-children', 'jobId', '5', 'prev', 'active');
  await add(b, 'event', 'added', 'jobId', 'ジョブ-🚀', 'name', 'naïve 名前');
  await add(b, 'event', 'a-custom-event-nobody-knows', 'jobId', '');
  await add(b, 'event', 'completed', 'jobId', '7', 'returnvalue', INVALID_UTF8, 'prev', INVALID_UTF8);
  await add(b, 'jobId', '8', 'event', 'first', 'event', 'second'); // a repeated field: the last one counts
  await add(b, 'evenT', 'x', 'jobid', '9', 'prevv', 'y', 'nam', 'z', 'delay', ''); // near misses are not kept; an empty value is
  await add(b, 'event', 'completed', 'jobId', '10', 'returnvalue', 'x'.repeat(300_000), 'prev', 'active');
  await add(b, 'e', '');
  await add(c, 'event', 'added', 'jobId', '11');
  await client.xtrim(c, 'MAXLEN', 0);
  return [a, b, c];
}

describe('XREAD reply parser', () => {
  it('yields exactly the entries and sizes the plain ioredis decoding yields', async () => {
    const streams = await writeStreams();
    const ids = streams.map(() => '0-0');
    const conn = connect();
    for (const count of [1, 3, 1000]) {
      const truth = plainDecode((await client.xreadBuffer('COUNT', count, 'STREAMS', ...streams, ...ids)) as Array<[Buffer, RawEntry[]]>);
      const parsed = parseXreadReply(await conn.xread({ count, streams: [...streams, ...ids] }));
      expect(parsed).toEqual(truth);
      expect(parsed.map((b) => b.entries.length)).toEqual([Math.min(count, 12), Math.min(count, 7)]);
    }
    // The same through decodeEntries (Cluster reads, history replay).
    const raw = (await client.xreadBuffer('COUNT', 1000, 'STREAMS', ...streams, ...ids)) as Array<[Buffer, RawEntry[]]>;
    const decoded = raw.filter(([, r]) => r.length > 0).map(([s, r]) => ({ stream: s.toString(), ...decodeEntries(r) }));
    expect(decoded).toEqual(plainDecode(raw));
    // Nothing after the last ids: a null reply.
    const last = raw.map(([, r]) => (r.at(-1)?.[0] ?? Buffer.from('0-0')).toString());
    expect(parseXreadReply(await conn.xread({ count: 1000, streams: [streams[0]!, streams[1]!, last[0]!, last[1]!] }))).toEqual([]);
  });

  it('refuses a truncated or foreign reply instead of reading past it', async () => {
    const [a] = await writeStreams();
    const reply = await connect().xread({ count: 5, streams: [a!, '0-0'] });
    for (const cut of [1, 10, reply.length - 1]) expect(() => parseXreadReply(reply.subarray(0, cut))).toThrow(/malformed/);
    expect(() => parseXreadReply(Buffer.from('$3\r\nabc\r\n'))).toThrow(/malformed/);
    expect(() => parseXreadReply(Buffer.concat([reply, Buffer.from('+OK\r\n')]))).toThrow(/malformed/);
  });
});

describe('reply framing', () => {
  it('finds the end of every reply wherever the byte stream is cut', async () => {
    const [a, b] = await writeStreams();
    const conn = connect();
    const replies = [
      await conn.xread({ count: 4, streams: [a!, b!, '0-0', '0-0'] }),
      Buffer.from('+OK\r\n'),
      Buffer.from('-ERR something\r\n'),
      Buffer.from(':-42\r\n'),
      Buffer.from('$-1\r\n'),
      Buffer.from('*-1\r\n'),
      Buffer.from('*0\r\n'),
      Buffer.from('$0\r\n\r\n'),
      Buffer.from('*2\r\n*1\r\n$2\r\n\r\n\r\n*0\r\n'),
      await conn.xread({ count: 2, streams: [a!, '0-0'] }),
    ];
    const all = Buffer.concat(replies);
    const framed = (chunks: Buffer[]): Buffer[] => {
      const f = new ReplyFramer();
      return chunks.flatMap((c) => f.push(c));
    };
    const same = (got: Buffer[]): boolean => got.length === replies.length && got.every((g, i) => g.equals(replies[i]!));
    expect(same(framed([all]))).toBe(true);
    const badCuts: number[] = [];
    for (let cut = 1; cut < all.length; cut++) if (!same(framed([all.subarray(0, cut), all.subarray(cut)]))) badCuts.push(cut);
    expect(badCuts).toEqual([]);
    expect(same(framed([...all].map((byte) => Buffer.from([byte]))))).toBe(true);
    // A reply of several hundred kilobytes arrives in many socket chunks.
    const big = await conn.xread({ count: 1000, streams: [b!, '0-0'] });
    expect(big.length).toBeGreaterThan(300_000);
    expect(parseXreadReply(big)).toEqual(plainDecode((await client.xreadBuffer('COUNT', 1000, 'STREAMS', b!, '0-0')) as Array<[Buffer, RawEntry[]]>));
  });
});

describe('raw connection', () => {
  it('authenticates, selects the db from the URL, names itself; an error reply rejects only its command', async () => {
    const secured = await startTestRedis({ password: 's3cr3t' });
    try {
      const db5 = secured.client();
      await db5.select(5);
      await db5.xadd('in-db-5', '*', 'event', 'added', 'jobId', '1');
      const conn = connect(`${secured.url}/5`);
      const read = async () => parseXreadReply(await conn.xread({ count: 10, streams: ['in-db-5', '0-0'] }));
      const [batch] = await read();
      expect(batch?.entries.map((e) => e.fields)).toEqual([{ event: 'added', jobId: '1', prev: undefined, delay: undefined, name: undefined }]);
      expect(await db5.client('LIST')).toMatch(/name=qltest:raw .*db=5/);
      await db5.set('not-a-stream', 'x');
      await expect(conn.xread({ count: 10, streams: ['not-a-stream', '0-0'] })).rejects.toThrow(RedisReplyError);
      expect(await read()).toEqual([batch]);
    } finally {
      await secured.stop();
    }
  });

  it('keeps retrying a wrong password, logs the error once and never the password', async () => {
    const secured = await startTestRedis({ password: 'right-one' });
    try {
      const lines: string[] = [];
      const destination = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString()), done()) });
      const conn = connect(`redis://:wrong-one@127.0.0.1:${secured.port}`, createLogger({ level: 'info', destination }));
      const pending = conn.xread({ count: 1, streams: ['nothing-here', '0-0'] });
      await new Promise((r) => setTimeout(r, 1500)); // several attempts (back-off 100, 200, 400, 800 ms)
      const errors = lines.filter((l) => l.includes('redis connection error'));
      expect(errors.length).toBe(1);
      expect(errors[0]).toMatch(/WRONGPASS|invalid password/);
      expect(lines.join('')).not.toContain('wrong-one');
      conn.disconnect();
      await expect(pending).rejects.toThrow(/closed/);
    } finally {
      await secured.stop();
    }
  });

  it('a blocking XREAD waits through a Redis restart and returns what is written after it', async () => {
    const own = await startTestRedis();
    try {
      const conn = connect(own.url);
      expect((await conn.xread({ count: 1, streams: ['after-restart', '0-0'] })).toString()).toBe('*-1\r\n');
      const blocked = conn.xread({ count: 10, block: 0, streams: ['after-restart', '0-0'] });
      await own.kill();
      await own.restart();
      const writer = own.client();
      // Written only once the re-sent XREAD is blocked again on the new server.
      for (;;) {
        const list = String(await writer.client('LIST'));
        if (/name=qltest:raw .*cmd=xread/.test(list)) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const id = await writer.xadd('after-restart', '*', 'event', 'added', 'jobId', '42');
      const [batch] = parseXreadReply(await blocked);
      expect(batch?.entries.map((e) => [e.id, e.fields.jobId])).toEqual([[id, '42']]);
    } finally {
      await own.stop();
    }
  });

  it('a link that goes silent (half-open) is dropped after the read deadline and the XREAD is answered on a new one', async () => {
    const proxy = await LinkProxy.start(redis.port);
    try {
      await client.del('half-open');
      const id = await client.xadd('half-open', '*', 'event', 'added', 'jobId', '7');
      const conn = connect(`redis://127.0.0.1:${proxy.port}`, undefined, { name: 'qltest:raw-half', readTimeoutMs: 300 });
      expect(parseXreadReply(await conn.xread({ count: 1, streams: ['nothing-here', '0-0'] }))).toEqual([]);
      const linkId = /id=(\d+) [^\n]*name=qltest:raw-half /.exec(String(await client.client('LIST')))![1];
      // The proxy keeps the link open but stops carrying Redis's answers: a peer that vanished without a FIN.
      const xreads = async () => Number(/cmdstat_xread:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0);
      const before = await xreads();
      proxy.dropReplies = true;
      const read = conn.xread({ count: 10, block: 100, streams: ['half-open', '0-0'] });
      // Redis has answered (and the proxy swallowed the answer) once it has run the XREAD: the entry is there already.
      while ((await xreads()) === before) await new Promise((r) => setTimeout(r, 20));
      proxy.dropReplies = false;
      const [batch] = parseXreadReply(await read);
      expect(batch?.entries.map((e) => [e.id, e.fields.jobId])).toEqual([[id, '7']]);
      // It came on a new link: the silent one was closed by the deadline.
      const list = String(await client.client('LIST'));
      expect(list).toMatch(/name=qltest:raw-half /);
      expect(list).not.toMatch(new RegExp(`id=${linkId} `));
    } finally {
      await proxy.close();
    }
  });

  it('disconnect() rejects a blocked XREAD at once, and every later call', async () => {
    const conn = connect();
    const blocked = conn.xread({ count: 1, block: 0, streams: ['never-written', '$'] });
    await new Promise((r) => setTimeout(r, 50));
    conn.disconnect();
    await expect(blocked).rejects.toThrow(/closed/);
    await expect(conn.xread({ count: 1, streams: ['never-written', '0-0'] })).rejects.toThrow(/closed/);
    conn.disconnect();
  });
});
