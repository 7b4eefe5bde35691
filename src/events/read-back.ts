// Reads the persisted event accounting back as plain data. Every replica, leader or not, calls it at
// collection time, so all of them render the same numbers. Small commands only: ZSCAN of the queue index
// and one HGETALL per queue, pipelined.
import type { Redis } from 'ioredis';
import { ownKeys, parseEventsMember, type QueueRef } from '../redis/keys.js';
import { parseQueueHash, type QueueEventStats } from './accounting.js';

export interface QueueEventAccounting {
  queue: QueueRef;
  stats: QueueEventStats;
}

const SLICE = 500;

export async function readEventAccounting(client: Redis, ownPrefix: string): Promise<QueueEventAccounting[]> {
  const index = ownKeys.eventsIndex(ownPrefix);
  // ZSCAN, not ZRANGE by rank: the leader re-scores members while this pages, which shifts ranks (a queue
  // skipped or read twice). ZSCAN returns every member present throughout, possibly more than once: a Set.
  const members = new Set<string>();
  let cursor = '0';
  do {
    const [next, flat] = await client.zscan(index, cursor, 'COUNT', SLICE);
    for (let i = 0; i < flat.length; i += 2) members.add(flat[i] as string);
    cursor = next;
  } while (cursor !== '0');

  const queues = [...members].map(parseEventsMember).filter((q): q is QueueRef => q !== null);
  const out: QueueEventAccounting[] = [];
  for (let start = 0; start < queues.length; start += SLICE) {
    const slice = queues.slice(start, start + SLICE);
    const pipe = client.pipeline();
    for (const q of slice) pipe.hgetall(ownKeys.eventsQueue(ownPrefix, q));
    const replies = (await pipe.exec()) ?? [];
    replies.forEach(([err, hash], i) => {
      if (err) throw err;
      const h = hash as Record<string, string>;
      // A queue forgotten between the ZSCAN and the HGETALL has an empty hash.
      if (Object.keys(h).length > 0) out.push({ queue: slice[i] as QueueRef, stats: parseQueueHash(h) });
    });
  }
  return out;
}
