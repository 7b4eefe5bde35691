// The proof that lets a full round of the event reader read only the streams that moved (events/round-proof.ts),
// against a real Redis. Every case where a quiet stream gains an entry must prove nothing, above all those where
// Redis's XADD count still grows by exactly the entries the step read: a moved stream replaced by RENAME, RENAMENX,
// COPY, RESTORE, MOVE or SWAPDB with one entry more (read, not XADDed) while one XADD went to the quiet stream.
// Ground truth: the quiet stream's entries past the reader's position, read back from Redis.
import type { Redis } from 'ioredis';
import { beforeEach, describe, expect, it } from 'vitest';
import { RoundProof, type ProofClient } from '../src/events/round-proof.js';
import { privateRedis } from './helpers/redis-server.js';

const COUNT = 1000;

/** A reader of streams A (moving) and Q (quiet): where it stands in each, the proof, and its reads. */
class Reader {
  readonly ids = new Map<string, string>();
  readonly proof: RoundProof;

  constructor(
    private readonly r: Redis,
    streams: string[],
  ) {
    this.proof = new RoundProof(() => r as unknown as ProofClient);
    for (const s of streams) this.ids.set(s, '0-0');
  }

  /** The atomic step over `moved`; whether it proved every stream at its end. */
  async step(moved: string[], count = COUNT, weigh: string[] = []): Promise<boolean> {
    const res = await this.proof.step(
      this.ids.keys(),
      moved.map((stream) => ({ stream, id: this.ids.get(stream) as string })),
      count,
      100,
      weigh,
    );
    for (const b of res.batches) this.ids.set(b.stream, (b.raw.at(-1) as [Buffer, Buffer[]])[0].toString());
    return res.proved;
  }

  /** A plain XREAD of one stream (a round's), told to the proof. */
  async read(stream: string): Promise<number> {
    const reply = (await this.r.xread('COUNT', COUNT, 'STREAMS', stream, this.ids.get(stream) as string)) as Array<[string, Array<[string, string[]]>]> | null;
    const entries = reply?.[0]?.[1] ?? [];
    if (entries.length > 0) this.ids.set(stream, (entries.at(-1) as [string, string[]])[0]);
    this.proof.observe(stream, entries.length, entries.length < COUNT);
    return entries.length;
  }

  /** What the reader does after a step that proved nothing: every stream read (to its end). */
  async fullRound(): Promise<void> {
    for (const s of this.ids.keys()) await this.read(s);
  }

  /** Entries of `stream` past where the reader stands (ground truth). */
  async unread(stream: string): Promise<number> {
    return (await this.r.xrange(stream, `(${this.ids.get(stream) as string}`, '+')).length;
  }
}

describe('RoundProof (real Redis)', () => {
  const server = privateRedis();
  let r: Redis;
  let reader: Reader;

  beforeEach(async () => {
    r = server.raw;
    await r.select(0);
    await r.flushall();
    await r.xadd('A', '*', 'e', 'a1');
    await r.xadd('A', '*', 'e', 'a2');
    await r.xadd('Q', '*', 'e', 'q1');
    reader = new Reader(r, ['A', 'Q']);
    // The base: every stream read to its end in the step.
    expect(await reader.step(['A', 'Q'])).toBe(false);
  });

  it('proves the quiet stream at its end while every XADD (plain, in MULTI, in a script) went to the moved one', async () => {
    await r.xadd('A', '*', 'e', 'a3');
    await r.multi().xadd('A', '*', 'e', 'a4').exec();
    await r.eval("redis.call('XADD', KEYS[1], '*', 'e', 'a5') return 1", 1, 'A');
    expect(await reader.step(['A'])).toBe(true);
    expect(await reader.unread('A')).toBe(0);
    // Entries read between two steps by a plain read count too.
    await r.xadd('A', '*', 'e', 'a6');
    expect(await reader.read('A')).toBe(1);
    await r.xadd('A', '*', 'e', 'a7');
    expect(await reader.step(['A'])).toBe(true);
    expect(await reader.step(['A'])).toBe(true);
  });

  it('weighs a paced stream (entries-added) instead of reading it, and reads it once it is no longer paced', async () => {
    // Paced from now: read once more (not weighed at the base), weighed from then on.
    await r.xadd('A', '*', 'e', 'a3');
    expect(reader.proof.weighs('A')).toBe(false);
    expect(await reader.step(['A'], COUNT, ['A'])).toBe(true);
    expect(reader.proof.weighs('A')).toBe(true);
    for (let i = 0; i < 3; i++) await r.xadd('A', '*', 'e', `p${i}`);
    expect(await reader.step([], COUNT, ['A'])).toBe(true);
    expect(await reader.unread('A')).toBe(3);
    // Its pace up: a read of it between steps neither counts nor taints.
    expect(await reader.read('A')).toBe(3);
    await r.xadd('A', '*', 'e', 'p3');
    expect(await reader.step([], COUNT, ['A'])).toBe(true);
    // Q's XADD is not hidden behind A's weight.
    await r.xadd('Q', '*', 'e', 'q2');
    await r.xadd('A', '*', 'e', 'p4');
    expect(await reader.step([], COUNT, ['A'])).toBe(false);
    // The full round that follows reads Q's entry, which may be older than that step: one more round.
    await reader.fullRound();
    expect(await reader.step([], COUNT, ['A'])).toBe(false);
    await reader.fullRound();
    expect(await reader.step([], COUNT, ['A'])).toBe(true);
    // No longer paced: weighed one last time and read; then a stream like any other.
    await r.xadd('A', '*', 'e', 'p5');
    expect(await reader.step(['A'])).toBe(true);
    expect(reader.proof.weighs('A')).toBe(false);
    expect(await reader.unread('A')).toBe(0);
    await r.xadd('A', '*', 'e', 'p6');
    expect(await reader.step(['A'])).toBe(true);
  });

  it('proves nothing when a weighed stream was deleted and re-created, or XSETID raised its entries-added', async () => {
    expect(await reader.step(['A'], COUNT, ['A'])).toBe(true);
    await r.del('A');
    await r.xadd('A', '*', 'e', 'new');
    expect(await reader.step([], COUNT, ['A'])).toBe(false);
    // Weighed afresh by that step.
    await reader.fullRound();
    expect(await reader.step([], COUNT, ['A'])).toBe(true);
    // One XADD to Q, and A's entries-added raised by one without an XADD: the count and the weights agree.
    await r.xadd('Q', '*', 'e', 'q2');
    const info = (await r.call('XINFO', 'STREAM', 'A')) as Array<string | number>;
    const at = (name: string) => info[info.indexOf(name) + 1];
    await r.call('XSETID', 'A', String(at('last-generated-id')), 'ENTRIESADDED', String(Number(at('entries-added')) + 1));
    expect(await reader.step([], COUNT, ['A'])).toBe(false);
    expect(await reader.unread('Q')).toBe(1);
  });

  it('proves nothing when the quiet stream got an XADD, plain, in MULTI or in a script', async () => {
    await r.xadd('Q', '*', 'e', 'q2');
    expect(await reader.step(['A'])).toBe(false);
    expect(await reader.read('Q')).toBe(1);
    // The read of Q after the step may hold entries older than it: the next step proves nothing either.
    await r.xadd('A', '*', 'e', 'a3');
    expect(await reader.step(['A'])).toBe(false);
    // A round that found Q at its end: proofs again.
    expect(await reader.read('Q')).toBe(0);
    expect(await reader.step(['A'])).toBe(true);
    await r.multi().xadd('Q', '*', 'e', 'q3').exec();
    expect(await reader.step(['A'])).toBe(false);
    expect(await reader.read('Q')).toBe(1);
    expect(await reader.read('Q')).toBe(0);
    await r.eval("redis.call('XADD', KEYS[1], '*', 'e', 'q4') return 1", 1, 'Q');
    expect(await reader.step(['A'])).toBe(false);
    expect(await reader.unread('Q')).toBe(1);
  });

  it('proves nothing while a stream left out of the step that proved nothing has not been read to its end', async () => {
    await r.xadd('Q', '*', 'e', 'q2');
    expect(await reader.step(['A'])).toBe(false);
    // Q still holds its entry; only A moves, by exactly what the step reads.
    await r.xadd('A', '*', 'e', 'a3');
    expect(await reader.step(['A'])).toBe(false);
    expect(await reader.unread('Q')).toBe(1);
  });

  it('proves nothing after XADDs that left no entry to read: failed, NOMKSTREAM, trimmed before the read', async () => {
    await r.set('str', 'x');
    await expect(r.xadd('str', '*', 'e', '1')).rejects.toThrow(/WRONGTYPE/);
    expect(await reader.step(['A'])).toBe(false);
    await reader.fullRound();
    expect(await reader.step(['A'])).toBe(true);
    expect(await r.xadd('nostream', 'NOMKSTREAM', '*', 'e', '1')).toBeNull();
    expect(await reader.step(['A'])).toBe(false);
    await reader.fullRound();
    expect(await reader.step(['A'])).toBe(true);
    await r.xadd('A', 'MAXLEN', '1', '*', 'e', 'a3');
    await r.xadd('A', 'MAXLEN', '1', '*', 'e', 'a4');
    expect(await reader.step(['A'])).toBe(false);
  });

  it('rests for 1, 2, 4, then 8 full rounds after three steps in a row proved nothing (XADDs to a stream not followed)', async () => {
    const rests: number[] = [];
    for (let k = 0; k < 7; k++) {
      let rest = 0;
      while (!reader.proof.due()) rest += 1;
      rests.push(rest);
      await r.xadd('other', '*', 'e', String(k));
      await reader.step(['A']);
      await reader.fullRound();
    }
    // The first step after a rest has no base: it counts as no failure, and the next one is the attempt.
    expect(rests).toEqual([0, 0, 0, 1, 0, 2, 0]);
    // After the rest (4 rounds) a base, then a proof again: the failures start over.
    let rest = 0;
    while (!reader.proof.due()) rest += 1;
    expect(rest).toBe(4);
    expect(await reader.step(['A'])).toBe(false);
    await reader.fullRound();
    expect(await reader.step(['A'])).toBe(true);
    for (let k = 0; k < 2; k++) {
      expect(reader.proof.due()).toBe(true);
      await r.xadd('other', '*', 'e', 'x');
      expect(await reader.step(['A'])).toBe(false);
      await reader.fullRound();
    }
    expect(reader.proof.due()).toBe(true);
  });

  it('proves nothing when a read of the step was cut by its COUNT', async () => {
    await r.xadd('A', '*', 'e', 'a3');
    await r.xadd('A', '*', 'e', 'a4');
    expect(await reader.step(['A'], 2)).toBe(false);
  });

  it('proves nothing after CONFIG RESETSTAT or XSETID', async () => {
    await r.config('RESETSTAT');
    expect(await reader.step(['A'])).toBe(false);
    await reader.fullRound();
    expect(await reader.step(['A'])).toBe(true);
    const [ms] = ((await r.xrevrange('Q', '+', '-', 'COUNT', 1)) as Array<[string, string[]]>)[0]?.[0].split('-') ?? [];
    await r.call('XSETID', 'Q', `${Number(ms) + 1000}-0`);
    expect(await reader.step(['A'])).toBe(false);
  });

  // One XADD to Q, and A replaced by a stream holding one entry more than the reader read: the step reads that one
  // entry, so the XADD count grew by exactly what it read. Each way of putting it there must prove nothing.
  const replaced: Array<[string, (r: Redis, spare: () => Promise<Redis>) => Promise<void>]> = [
    ['RENAME', async (r) => void (await r.rename('T', 'A'))],
    [
      'RENAMENX',
      async (r) => {
        await r.del('A');
        expect(await r.renamenx('T', 'A')).toBe(1);
      },
    ],
    ['COPY', async (r) => void (await r.call('COPY', 'T', 'A', 'REPLACE'))],
    ['RESTORE', async (r) => void (await r.restore('A', 0, await r.dumpBuffer('T'), 'REPLACE'))],
    [
      'MOVE',
      async (r, spare) => {
        await r.call('COPY', 'T', 'T', 'DB', '1');
        const other = await spare();
        await r.del('A');
        await other.rename('T', 'A');
        expect(await other.move('A', 0)).toBe(1);
      },
    ],
  ];

  for (const [name, replace] of replaced) {
    it(`proves nothing when ${name} put an entry in a read stream while an XADD went to the quiet one`, async () => {
      await r.call('COPY', 'A', 'T');
      await r.xadd('T', '*', 'e', 'not-an-xadd-of-A');
      // COPY and an XADD that is not A's: a step proves nothing, and is the base of the next one.
      expect(await reader.step(['A'])).toBe(false);
      await reader.fullRound();
      expect(await reader.step(['A'])).toBe(true);
      const spares: Redis[] = [];
      const spare = async () => {
        const c = server.redis.client();
        await c.select(1);
        spares.push(c);
        return c;
      };
      try {
        await r.xadd('Q', '*', 'e', 'q2');
        await replace(r, spare);
        expect(await reader.step(['A'])).toBe(false);
        expect(await reader.unread('Q')).toBe(1);
      } finally {
        for (const c of spares) c.disconnect();
      }
    });
  }

  it('proves nothing when SWAPDB brought streams holding one entry more each while an XADD went elsewhere', async () => {
    await r.call('COPY', 'A', 'A', 'DB', '1');
    await r.call('COPY', 'Q', 'Q', 'DB', '1');
    const other = server.redis.client();
    try {
      await other.select(1);
      await other.xadd('A', '*', 'e', 'a-db1');
      await other.xadd('Q', '*', 'e', 'q-db1');
      expect(await reader.step(['A'])).toBe(false);
      await reader.fullRound();
      expect(await reader.step(['A'])).toBe(true);
      await r.xadd('Q', '*', 'e', 'q2');
      await r.swapdb(0, 1);
      expect(await reader.step(['A'])).toBe(false);
      expect(await reader.unread('Q')).toBe(1);
    } finally {
      other.disconnect();
    }
  });
});
