// Reads the persisted event accounting back as plain data. Every replica, leader or not, calls it at
// collection time, so all of them render the same numbers. Small commands only: ZRANGE slices of the
// queue index and one HGETALL per queue, sent together (auto-pipelined on standalone, to each key's node on
// Cluster, where one pipeline could not span nodes).
import type { RedisClient } from '../redis/connection.js';
import { ownKeys, parseEventsMember, type QueueRef } from '../redis/keys.js';
import { parseQueueHash, type QueueEventStats } from './accounting.js';

export interface QueueEventAccounting {
  queue: QueueRef;
  stats: QueueEventStats;
}

const SLICE = 500;

export async function readEventAccounting(client: RedisClient, ownPrefix: string): Promise<QueueEventAccounting[]> {
  const index = ownKeys.eventsIndex(ownPrefix);
  const out: QueueEventAccounting[] = [];
  for (let start = 0; ; start += SLICE) {
    const members = await client.zrange(index, String(start), String(start + SLICE - 1));
    const queues = members.map(parseEventsMember).filter((q): q is QueueRef => q !== null);
    const replies = await Promise.all(queues.map((q) => client.hgetall(ownKeys.eventsQueue(ownPrefix, q))));
    replies.forEach((h, i) => {
      // A queue forgotten between the ZRANGE and the HGETALL has an empty hash.
      if (Object.keys(h).length > 0) out.push({ queue: queues[i] as QueueRef, stats: parseQueueHash(h) });
    });
    if (members.length < SLICE) return out;
  }
}
