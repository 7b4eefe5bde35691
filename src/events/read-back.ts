// Reads the persisted event accounting back as plain data. Every replica, leader or not, calls it at
// collection time, so all of them render the same numbers. Small commands only: ZSCAN of the queue index,
// TIME (the lag is aged on the Redis clock, the one the leader committed with), the readers' heartbeats and one
// HGETALL per queue, sent
// together (auto-pipelined on standalone, to each key's node on Cluster, where one pipeline could not span nodes).
import { Slicer } from '../util/slicer.js';
import type { RedisClient } from '../redis/connection.js';
import { ownKeys, parseEventsMember } from '../redis/keys.js';
import { type QueueRef } from '../domain/queue-ref.js';
import type { QueueEventAccounting } from '../domain/event-accounting.js';
import { parseQueueHash } from './accounting.js';

export type { QueueEventAccounting } from '../domain/event-accounting.js';

const SLICE = 500;

export async function readEventAccounting(client: RedisClient, ownPrefix: string): Promise<QueueEventAccounting[]> {
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

  const heartbeats = await client.hgetall(ownKeys.eventsMeta(ownPrefix));
  const [sec, usec] = await client.time();
  const nowMs = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  const queues = [...members].map(parseEventsMember).filter((q): q is QueueRef => q !== null);
  const out: QueueEventAccounting[] = [];
  const slicer = new Slicer();
  for (let start = 0; start < queues.length; start += SLICE) {
    const slice = queues.slice(start, start + SLICE);
    const replies = await Promise.all(slice.map((q) => client.hgetall(ownKeys.eventsQueue(ownPrefix, q))));
    for (const [i, h] of replies.entries()) {
      if (slicer.due()) await slicer.yield();
      // A queue forgotten between the ZSCAN and the HGETALL has an empty hash.
      if (Object.keys(h).length > 0) out.push({ queue: slice[i] as QueueRef, stats: parseQueueHash(h, nowMs, heartbeats) });
    }
  }
  return out;
}
