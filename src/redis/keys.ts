// The only module that spells a Redis key name: BullMQ's (read-only for us) and queuelens's own.
import type { QueueRef } from '../domain/queue-ref.js';

export const BULLMQ_QUEUE_SUFFIXES = [
  'wait',
  'paused',
  'active',
  'prioritized',
  'delayed',
  'waiting-children',
  'completed',
  'failed',
  'stalled',
  'stalled-check',
  'limiter',
  'meta',
  'events',
  'id',
  'marker',
  'pc',
] as const;
export type QueueSuffix = (typeof BULLMQ_QUEUE_SUFFIXES)[number];

/** `<prefix>:<queue>:<suffix>` (BullMQ's queue-keys.js). */
export function queueKey(q: QueueRef, suffix: QueueSuffix): string {
  return `${q.prefix}:${q.name}:${suffix}`;
}

/** `<prefix>:<queue>:` — the base a job id is appended to. */
export function queueBase(q: QueueRef): string {
  return `${q.prefix}:${q.name}:`;
}

export function jobKey(q: QueueRef, jobId: string): string {
  return `${q.prefix}:${q.name}:${jobId}`;
}

export function jobLockKey(q: QueueRef, jobId: string): string {
  return `${q.prefix}:${q.name}:${jobId}:lock`;
}

/** SCAN pattern that finds queue meta hashes under a prefix. Glob characters in the prefix are escaped. */
export function metaScanPattern(prefix: string): string {
  return `${escapeGlob(prefix)}:*:meta`;
}

/** Parses `<prefix>:<queue>:meta` back into a queue, or null if the key cannot be a queue's meta hash. */
export function parseMetaKey(prefix: string, key: string): QueueRef | null {
  const head = `${prefix}:`;
  if (!key.startsWith(head) || !key.endsWith(':meta')) return null;
  const name = key.slice(head.length, -':meta'.length);
  // Queue names cannot contain ':' (BullMQ throws); `<prefix>::relay:…` is BullMQ's Relay, not a queue.
  if (name === '' || name.includes(':')) return null;
  return { prefix, name };
}

/** Name BullMQ gives a Worker's blocking connection: `<prefix>:<base64(queue)>` optionally `:w:<worker name>`. */
export function workerClientName(q: QueueRef): string {
  return `${q.prefix}:${Buffer.from(q.name).toString('base64')}`;
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

// ---- queuelens's own keys: never under a BullMQ prefix ----

export const OWN_PREFIX_DEFAULT = 'queuelens';

export const ownKeys = {
  leader: (own: string, shard = 'all') => `${own}:leader:${shard}`,
  /** String with a TTL: a `queuelens demo` runs against this Redis (one at a time: it removes its keys on exit). */
  demoRunning: (own: string) => `${own}:demo:running`,
  /** Counter: every lease acquisition takes the next number, the fencing generation of its term (any shard). */
  eventsGeneration: (own: string) => `${own}:events:gen`,
  /** Sorted set of live sidecar replicas (member replica id, score = last heartbeat, Redis clock ms): the fair share of shard leases. */
  eventsReplicas: (own: string) => `${own}:events:replicas`,
  /** Hash: when the event reader first ran here (`installedAt`, Redis clock ms). */
  eventsMeta: (own: string) => `${own}:events:meta`,
  /** Hash: per queue (`<prefix>:<queue>`) what the collections learnt of its Worker limiter (collector/worker-limiter.ts). */
  workerLimiters: (own: string) => `${own}:limiters`,
  /** STRING: the last collection of the replica that holds every event shard, for the others to render (collector/shared-snapshot.ts). */
  snapshot: (own: string) => `${own}:snapshot`,
  /** Hash: per sidecar replica, how often its data is asked for (collector/demand-pace.ts); expires when none is asked. */
  demand: (own: string) => `${own}:demand`,
  /** Sorted set of queues with event state: member eventsMember(q), score = last time the queue was seen (ms). */
  eventsIndex: (own: string) => `${own}:events:queues`,
  /**
   * Hash per queue: cumulative event accounting, the stream cursor and loss bookkeeping (events/accounting.ts).
   * The own prefix has no braces, so on Cluster this key takes the queue's own hash tag and shares the slot of
   * the queue's events stream: one script can update both.
   */
  eventsQueue: (own: string, q: QueueRef) => `${own}:events:q:${q.prefix}:${q.name}`,
  /** ZSET of source job ids already copied to the dead-letter queue (score = failure time), so a sweep never copies twice. */
  deadLettered: (own: string, q: QueueRef) => `${own}:dlq-done:${q.prefix}:${q.name}`,
  /** Hash: dead-letter id -> JSON of the secret-named job data fields held out of the DLQ copy (Bull Board shows job data). */
  deadLetterSecrets: (own: string, q: QueueRef) => `${own}:dlq-secrets:${q.prefix}:${q.name}`,
  /** String with expiry: a redrive of this dead letter is under way (concurrent redrives of it get a conflict). */
  redriveClaim: (own: string, q: QueueRef, dlqJobId: string) => `${own}:redrive:${q.prefix}:${q.name}:${dlqJobId}`,
  /**
   * String: this dead letter's redrive was committed (value: the new job id) and its removal from the DLQ is pending.
   * Written in the same transaction as the re-add; deleted once the dead letter is gone.
   */
  /** String with expiry: an admin session (value: its expiry, ms); deleted by logout. Named by a hash of the session id. */
  adminSession: (own: string, sessionHash: string) => `${own}:admin:session:${sessionHash}`,
  redriven: (own: string, q: QueueRef, dlqJobId: string) => `${own}:redriven:${q.prefix}:${q.name}:${dlqJobId}`,
};

/** Index member of a queue: `<prefix>:<queue>` (queue names cannot contain ':', prefixes can). */
export function eventsMember(q: QueueRef): string {
  return `${q.prefix}:${q.name}`;
}

export function parseEventsMember(member: string): QueueRef | null {
  const i = member.lastIndexOf(':');
  if (i <= 0 || i === member.length - 1) return null;
  return { prefix: member.slice(0, i), name: member.slice(i + 1) };
}
