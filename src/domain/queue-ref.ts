// Owns how a queue is named, the domain's one key: a BullMQ prefix and a queue name. Plain data, with no Redis
// and no backend in it: every layer, and each backend, speaks of queues with it.

export interface QueueRef {
  prefix: string;
  name: string;
}

/** A queue's identity as one string, for maps and sets: prefix and name joined by a NUL. */
export function queueId(q: QueueRef): string {
  return `${q.prefix}\u0000${q.name}`;
}
