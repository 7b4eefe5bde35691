// Owns how a queue is named, the domain's one key: a BullMQ prefix and a queue name. Plain data, with no Redis
// and no backend in it: every layer, and each backend, speaks of queues with it.

export interface QueueRef {
  prefix: string;
  name: string;
}

/**
 * Each ref's id, built once and held by the ref itself under a non-enumerable symbol: discovery hands out the same
 * ref objects collection after collection, and every pass over the fleet (collector, board, metrics, read-back)
 * keys maps by the id. A string built anew each time is a new allocation, hashed again at each map lookup; a
 * WeakMap from ref to id costs a hash-table probe per call in a large heap (3.3 s of a 10,000-queue profile); a
 * property of the ref is a plain load. Non-enumerable: a copy (`{ ...ref, name }`) does not carry it, JSON and
 * equality checks do not see it. Refs are not written after they are made (a ref whose fields changed would keep
 * its old id: make a new ref instead); a frozen ref gets its id built at each call.
 */
const ID = Symbol('queueId');

/** A queue's identity as one string, for maps and sets: prefix and name joined by a NUL. */
export function queueId(q: QueueRef): string {
  const held = (q as { [ID]?: string })[ID];
  if (held !== undefined) return held;
  const id = `${q.prefix}\u0000${q.name}`;
  if (Object.isExtensible(q)) Object.defineProperty(q, ID, { value: id });
  return id;
}
