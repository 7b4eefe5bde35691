// The burst guard's XADD count (events/burst-guard.ts XaddCounter): LATENCY HISTOGRAM XADD while latency tracking is
// on (a reply of one command instead of INFO commandstats' every command), the same count as INFO's, scripts' inner
// XADDs included; switching latency tracking off makes the guard vouch for nothing read before, and the cross-check
// moves it to INFO commandstats for good. Ground truth: INFO commandstats of the same private Redis.
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { BurstGuard, XaddCounter, type CounterClient } from '../src/events/burst-guard.js';
import { privateRedis } from './helpers/redis-server.js';

const infoXadds = async (r: Redis) => Number(/^cmdstat_xadd:calls=(\d+)/m.exec(await r.info('commandstats'))?.[1] ?? 0);

describe('XaddCounter (real Redis)', () => {
  const server = privateRedis();

  it('counts what INFO commandstats counts with LATENCY HISTOGRAM, and moves to INFO when latency tracking stops', async () => {
    const { raw } = server;
    let now = 1_000_000;
    const counter = new XaddCounter(
      () => raw as unknown as CounterClient,
      () => now,
    );
    const guard = new BurstGuard(() => counter.read());
    const stream = { readAt: 0, rate: 0 };
    await raw.xadd('s', '*', 'a', '1');
    await raw.eval("redis.call('XADD', KEYS[1], '*', 'b', '2') return 1", 1, 's');
    // The first read is the cross-check (MULTI with INFO): the same count.
    const first = await counter.read();
    expect(counter.cheap).toBe(true);
    expect(first.xadd).toBe(await infoXadds(raw));
    for (let i = 0; i < 5; i += 1) await raw.xadd('s', '*', 'i', String(i));
    now += 1000;
    const second = await counter.read();
    expect(second.xadd).toBe(await infoXadds(raw));
    expect(second.reads).toBeGreaterThan(first.reads);

    // The guard: a base, then a stream read after it is vouched for (what grew beyond its rate: 3 XADDs).
    await guard.check([{ readAt: now, rate: 0 }], now);
    stream.readAt = now + 1;
    now += 600;
    for (let i = 0; i < 3; i += 1) await raw.xadd('s', '*', 'j', String(i));
    await guard.check([stream], now);
    expect(guard.since(stream.readAt, 0)).toBe(3);

    // Latency tracking switched off: the histogram stops counting, and so does its own count (the reply holds the
    // calls before it: the first one after the switch still shows the one before it), so the second check after it
    // is a reset: nothing read before it is vouched for.
    await raw.config('SET', 'latency-tracking', 'no');
    try {
      for (let i = 0; i < 4; i += 1) await raw.xadd('s', '*', 'k', String(i));
      now += 600;
      await guard.check([stream], now);
      now += 600;
      await guard.check([stream], now);
      expect(guard.since(stream.readAt, 0)).toBe(Infinity);
      expect(guard.baseAt).toBe(now);
      // The read after one whose own count did not grow is a cross-check (not a minute on): it finds tracking off,
      // INFO from then on, and that read is a reset too.
      now += 600;
      await guard.check([stream], now);
      expect(counter.cheap).toBe(false);
      expect(guard.baseAt).toBe(now);
      const viaInfo = await counter.read();
      expect(viaInfo.xadd).toBe(await infoXadds(raw));
      // And the guard counts through INFO as before.
      stream.readAt = now + 1;
      now += 600;
      for (let i = 0; i < 2; i += 1) await raw.xadd('s', '*', 'm', String(i));
      await guard.check([stream], now);
      expect(guard.since(stream.readAt, guard.excess - 2)).toBe(2);
      // With latency tracking off from the start, the first read (a cross-check) already counts through INFO.
      const fresh = new XaddCounter(
        () => raw as unknown as CounterClient,
        () => now,
      );
      expect((await fresh.read()).xadd).toBe(await infoXadds(raw));
      expect(fresh.cheap).toBe(false);
    } finally {
      await raw.config('SET', 'latency-tracking', 'yes');
    }
  });

  it('at rest one LATENCY HISTOGRAM a read and INFO once a minute; tracking switched off and on between reads is caught by then', async () => {
    const { raw } = server;
    await raw.config('SET', 'latency-tracking', 'yes');
    let now = 5_000_000;
    const counter = new XaddCounter(
      () => raw as unknown as CounterClient,
      () => now,
    );
    const infoCalls = async () => Number(/^cmdstat_info:calls=(\d+)/m.exec(await raw.info('commandstats'))?.[1] ?? 0);
    // The first test switched tracking off while XADDs ran: the histogram is behind INFO by that much from the start.
    const behind = (await infoXadds(raw)) - (await counter.read()).xadd;
    // Reads 5 s apart (the idle gate's at rest) for 55 s: no INFO but the two of ours around them.
    const infos = await infoCalls();
    for (let i = 0; i < 11; i += 1) {
      now += 5000;
      await counter.read();
    }
    expect((await infoCalls()) - infos).toBe(1);
    expect(counter.cheap).toBe(true);
    // Switched off and on between two reads: the histogram misses those XADDs while its own count grows (not a reset).
    await raw.config('SET', 'latency-tracking', 'no');
    for (let i = 0; i < 3; i += 1) await raw.xadd('t', '*', 'o', String(i));
    await raw.config('SET', 'latency-tracking', 'yes');
    now += 1000;
    const missed = await counter.read();
    expect(missed.xadd).toBe((await infoXadds(raw)) - behind - 3);
    // The minute's cross-check finds the counts apart: INFO for good, a reset, the count exact again.
    now += 60_000;
    const after = await counter.read();
    expect(counter.cheap).toBe(false);
    expect(after).toEqual({ xadd: await infoXadds(raw), reads: -1 });
  });
});
