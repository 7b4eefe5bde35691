// Owns how a queue is named, the domain's one key: a BullMQ prefix and a queue name. Plain data, with no Redis
// and no backend in it: every layer, and each backend, speaks of queues with it.

export interface QueueRef {
  prefix: string;
  name: string;
}

/**
 * Each ref's id, built once: discovery hands out the same ref objects collection after collection, and every pass
 * over the fleet (collector, board, metrics, read-back) keys maps by the id. A string built anew each time is a
 * new allocation and hashed again at each map lookup; the cached one is neither. Refs are not written after they
 * are made (a ref whose fields changed would keep its old id: make a new ref instead).
 */
const ids = new WeakMap<QueueRef, string>();

/** A queue's identity as one string, for maps and sets: prefix and name joined by a NUL. */
export function queueId(q: QueueRef): string {
  let id = ids.get(q);
  if (id === undefined) {
    id = `${q.prefix}\u0000${q.name}`;
    ids.set(q, id);
  }
  return id;
}
