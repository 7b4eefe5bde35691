// Adversarial probe (issue 18): the `workers` gauge on PostgreSQL counts sessions by `application_name`, which
// PostgreSQL stores truncated to 63 bytes and with non-ASCII bytes replaced. Ground truth: the Worker objects started.
import { beforeAll, describe, expect, it } from 'vitest';
import { PostgresSnapshotCollector, sessionNameOf } from '../src/postgres/snapshot.js';
import { usePostgresSuite } from './helpers/postgres-suite.js';

const POLL = { timeout: 60_000, interval: 200 };

describe('adversary: workers gauge on PostgreSQL', () => {
  const pg = usePostgresSuite();
  let collector: PostgresSnapshotCollector;

  beforeAll(() => {
    collector = new PostgresSnapshotCollector(pg.server.pool(2));
  });

  const workersOf = async (): Promise<Map<string, number | undefined>> => {
    const snap = await collector.collect();
    expect(snap.ok, snap.error).toBe(true);
    return new Map(snap.queues.map((q) => [q.ref.name, q.workers]));
  };

  it('knows the form PostgreSQL 16+ gives non-ASCII bytes (hex escapes) and the 63-byte cut', () => {
    expect(sessionNameOf('café', 150000)).toBe('caf??');
    expect(sessionNameOf('café', 160000)).toBe('caf\\xc3\\xa9');
    expect(sessionNameOf('y'.repeat(70), 170000)).toBe('y'.repeat(63));
  });

  it.each([
    ['ascii, short', 'plain-queue'],
    ['quotes and spaces', `it's a "queue"`],
    ['unicode', 'café-队列'],
    ['longer than 63 bytes', `long-${'x'.repeat(80)}`],
  ])('counts the workers of a queue whose name is %s', async (_what, name) => {
    await pg.bull.queue(name).add('j', {});
    const w1 = pg.bull.worker(name, async () => 1);
    const w2 = pg.bull.worker(name, async () => 1, { name: 'second' });
    await w1.waitUntilReady();
    await w2.waitUntilReady();
    await expect.poll(async () => (await workersOf()).get(name), POLL).toBe(2);
    await w1.close();
    await w2.close();
    await expect.poll(async () => (await workersOf()).get(name), POLL).toBe(0);
  });
});
