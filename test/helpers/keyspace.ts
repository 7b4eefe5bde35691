// A whole Redis keyspace as data, for tests that prove a command wrote nothing (or nothing outside its prefix).
import type { Redis } from 'ioredis';

/** Every key with its type and full content, sorted: two equal snapshots mean nothing was written. */
export async function keyspace(client: Redis, skip?: RegExp): Promise<Record<string, unknown>> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  const out: Record<string, unknown> = {};
  for (const key of keys.sort()) {
    if (skip?.test(key)) continue;
    const type = await client.type(key);
    const content =
      type === 'string'
        ? await client.get(key)
        : type === 'hash'
          ? await client.hgetall(key)
          : type === 'list'
            ? await client.lrange(key, 0, -1)
            : type === 'set'
              ? (await client.smembers(key)).sort()
              : type === 'zset'
                ? await client.zrange(key, 0, '-1', 'WITHSCORES')
                : type === 'stream'
                  ? await client.xrange(key, '-', '+')
                  : type;
    out[key] = { type, content };
  }
  return out;
}
