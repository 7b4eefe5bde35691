// Owns the typed boundary to queuelens's Lua scripts (src/redis/lua/): one spec per script, its arguments by
// name and its reply decoded by name, here and nowhere else. Each script's header documents the same layout;
// test/lua-scripts.test.ts runs every script against Redis and fails when a reply and its decoder drift apart.
import type { QueueReading } from '../domain/backend.js';
import type { ScriptSpec } from './scripts.js';

// ---- get-queue-states-n.lua: the collector's read of a group of queues ----

/** The fields of one queue in get-queue-states' reply, in the order the script writes them. */
export const QUEUE_FIELDS = [
  'metaExists',
  'paused',
  'waiting',
  'active',
  'prioritized',
  'delayed',
  'waitingChildren',
  'completed',
  'failed',
  'delayedOverdue',
  'headEligibleMs',
  'oldestActiveStartMs',
  'orphanedActive',
  'activeLocksChecked',
  'limiterPttl',
  'limiterCount',
  'globalRateMax',
  'lockOwners',
  'nextDueMs',
  'lockExpiresMs',
] as const;
export type QueueField = (typeof QUEUE_FIELDS)[number];
/** One queue as get-queue-states read it: the backend-neutral reading (-1 stands for "none", see the script's header). */
export type QueueFields = QueueReading;
// The reply carries every field of a reading and nothing else: a compile error otherwise.
const _sameFields: [QueueField] extends [keyof QueueReading] ? ([keyof QueueReading] extends [QueueField] ? true : never) : never = true;

export interface QueueStatesReply {
  /** Redis's clock (TIME) when the group was read, ms. */
  nowMs: number;
  /** Per queue of the call, its fields; undefined for a queue the script could not read (a key of the wrong type). */
  queues: Array<QueueFields | undefined>;
}

export const getQueueStates: ScriptSpec<{ bases: readonly string[]; activeCheckLimit: number }, QueueStatesReply> = {
  file: 'get-queue-states-n.lua',
  keys: (a) => [...a.bases],
  args: (a) => [a.activeCheckLimit],
  decode: (reply, a) => decodeQueueStates(String(reply), a.bases.length),
};

/**
 * Decodes a reply 'nowMs;q1;q2…' (fields comma-separated) of `queues` queues, each on its own: a queue whose
 * part is not QUEUE_FIELDS.length finite numbers (the script's '!' for a queue it could not read, or anything
 * else unexpected) is undefined and only that queue is skipped. Integers are read digit by digit, without a
 * string per number (1,000 queues are 18,000 numbers per collection); anything else goes to Number().
 */
export function decodeQueueStates(reply: string, queues: number): QueueStatesReply {
  const width = QUEUE_FIELDS.length;
  const numbers = new Float64Array(1 + queues * width);
  const bad = new Uint8Array(queues);
  let part = 0; // 0: nowMs, then queue part + 1
  let n = 0; // fields read in the current part
  let start = 0;
  let value = 0;
  let negative = false;
  let plain = true;
  let broken = false;
  for (let i = 0; i <= reply.length; i += 1) {
    const c = i === reply.length ? 59 : reply.charCodeAt(i);
    if (c === 59 || c === 44) {
      // ';' or ','
      if (!broken) {
        const v = plain && i > start ? (negative ? -value : value) : Number(reply.slice(start, i) || 'x');
        if (!Number.isFinite(v) || n >= (part === 0 ? 1 : width)) broken = true;
        else numbers[(part === 0 ? 0 : 1 + (part - 1) * width) + n++] = v;
      }
      if (c === 59) {
        if (part === 0 && (broken || n !== 1)) throw new Error('unexpected reply shape from get-queue-states');
        if (part > 0 && part <= queues && (broken || n !== width)) bad[part - 1] = 1;
        part += 1;
        n = 0;
        broken = false;
      }
      start = i + 1;
      value = 0;
      negative = false;
      plain = true;
    } else if (c >= 48 && c <= 57) value = value * 10 + (c - 48);
    else if (c === 45 && i === start) negative = true;
    else plain = false;
  }
  if (part !== queues + 1) throw new Error('unexpected reply shape from get-queue-states');
  const out: Array<QueueFields | undefined> = [];
  for (let q = 0; q < queues; q += 1) {
    if (bad[q] === 1) {
      out.push(undefined);
      continue;
    }
    const fields = {} as QueueFields;
    const at = 1 + q * width;
    for (let k = 0; k < width; k += 1) fields[QUEUE_FIELDS[k]!] = numbers[at + k]!;
    out.push(fields);
  }
  return { nowMs: numbers[0]!, queues: out };
}

// ---- count-orphaned-active-1.lua: one page of a busy queue's active list ----

export const countOrphanedActive: ScriptSpec<{ activeKey: string; base: string; start: number; stop: number }, number> = {
  file: 'count-orphaned-active-1.lua',
  keys: (a) => [a.activeKey],
  args: (a) => [a.base, a.start, a.stop],
  decode: (reply) => Number(reply),
};

// ---- the leader lease (lease-renew-1.lua, lease-release-1.lua, generation-advance-1.lua) ----

/** true: renewed; false: the lease expired or another holder has it. */
export const leaseRenew: ScriptSpec<{ key: string; token: string; ms: number }, boolean> = {
  file: 'lease-renew-1.lua',
  keys: (a) => [a.key],
  args: (a) => [a.token, a.ms],
  decode: (reply) => reply === 1,
};

/** true: released; false: the caller did not hold it. */
export const leaseRelease: ScriptSpec<{ key: string; token: string }, boolean> = {
  file: 'lease-release-1.lua',
  keys: (a) => [a.key],
  args: (a) => [a.token],
  decode: (reply) => reply === 1,
};

/** The new generation: above `floor` and above every number the counter handed out before. */
export const generationAdvance: ScriptSpec<{ counterKey: string; floor: number }, number> = {
  file: 'generation-advance-1.lua',
  keys: (a) => [a.counterKey],
  args: (a) => [a.floor],
  decode: (reply) => Number(reply),
};

// ---- the event reader's state (events-init-n.lua, events-commit-n.lua, events-forget-n.lua, events-restart-1.lua, events-gone-1.lua) ----

export interface EventsInitQueue {
  /** Its state hash (ownKeys.eventsQueue). */
  hash: string;
  /** Its events stream, `<prefix>:<queue>:events`. */
  stream: string;
  /** New to a prefix the reader already watched: read from the oldest retained entry, the trimmed rest counted lost. */
  fresh: boolean;
}

/** Either every queue's cursor, or the generation above the caller's that one of them carries. */
export type EventsInitReply = { cursors: string[] } | { newerGeneration: number };

export const eventsInit: ScriptSpec<{ gen: number; installedAt: string; queues: readonly EventsInitQueue[] }, EventsInitReply> = {
  file: 'events-init-n.lua',
  keys: (a) => a.queues.map((q) => q.hash),
  args: (a) => [a.gen, a.installedAt, ...a.queues.map((q) => q.stream), ...a.queues.map((q) => (q.fresh ? 1 : 0))],
  decode: (reply) => (typeof reply === 'number' ? { newerGeneration: reply } : { cursors: (reply as unknown[]).map(String) }),
};

export interface EventsCommitQueue {
  hash: string;
  stream: string;
  /** The cursor the caller last committed or loaded (compare-and-set). */
  committedId: string;
  /** The last applied id. */
  cursor: string;
  /** Entries applied since the last commit; 0 only refreshes the lag. */
  applied: number;
  /** Accounting fields and values that changed (flat: field, value, …). */
  fields: ReadonlyArray<string | number>;
}

/** Per queue committed: the entries newly counted lost, and whether its stream held nothing past the cursor. */
export interface EventsCommitResult {
  lost: number;
  caughtUp: boolean;
  /** The stream's length after the commit; -1 when it does not exist. */
  length: number;
}

/** null: a newer term claimed one of the queues; else one result per queue. */
export const eventsCommit: ScriptSpec<
  { gen: number; graceMs: number; heartbeatField: string; queues: readonly EventsCommitQueue[] },
  EventsCommitResult[] | null
> = {
  file: 'events-commit-n.lua',
  keys: (a) => a.queues.map((q) => q.hash),
  args: (a) => [a.gen, a.graceMs, a.heartbeatField, ...a.queues.flatMap((q) => [q.stream, q.committedId, q.cursor, q.applied, q.fields.length, ...q.fields])],
  decode: (reply) => {
    if (reply === null) return null;
    const flat = (reply as unknown[]).map(Number);
    return Array.from({ length: flat.length / 3 }, (_, i) => ({
      lost: flat[3 * i] as number,
      caughtUp: flat[3 * i + 1] === 1,
      length: flat[3 * i + 2] as number,
    }));
  },
};

/** Per queue: true when its state was deleted, false when a newer term claimed it. */
export const eventsForget: ScriptSpec<{ gen: number; hashes: readonly string[] }, boolean[]> = {
  file: 'events-forget-n.lua',
  keys: (a) => [...a.hashes],
  args: (a) => [a.gen],
  decode: (reply) => (reply as unknown[]).map((x) => Number(x) === 1),
};

/** true: restarted at '0-0' with nothing seen; false: the stream exists, or another term owns the state. */
export const eventsRestart: ScriptSpec<{ hash: string; gen: number; stream: string }, boolean> = {
  file: 'events-restart-1.lua',
  keys: (a) => [a.hash],
  args: (a) => [a.gen, a.stream],
  decode: (reply) => reply === 1,
};

export interface EventsGoneReply {
  /** The stream's last-generated id when the jobs were looked at ('0-0' when it does not exist). */
  lastId: string;
  /** Per id asked, whether its job hash is gone. */
  gone: boolean[];
}

export const eventsGone: ScriptSpec<{ stream: string; base: string; ids: readonly string[] }, EventsGoneReply> = {
  file: 'events-gone-1.lua',
  keys: (a) => [a.stream],
  args: (a) => [a.base, ...a.ids],
  decode: (reply) => {
    const [last, ...flags] = reply as unknown[];
    return { lastId: String(last), gone: flags.map((x) => Number(x) === 1) };
  },
};

// ---- discovery-look-n.lua: discovery's looks at known queues' keys (redis/stream-proof.ts) ----

export interface DiscoveryLookReply {
  /** 'added' only: the server's run_id and its XADD calls so far, read with the values in one atomic step. */
  runId: string;
  xadds: number;
  /** Per key asked, in order (see the script's header; -1: not what the mode reads). */
  values: number[];
}

export const discoveryLook: ScriptSpec<{ mode: 'added' | 'length' | 'meta'; keys: readonly string[] }, DiscoveryLookReply> = {
  file: 'discovery-look-n.lua',
  keys: (a) => [...a.keys],
  args: (a) => [a.mode],
  decode: (reply, a) => {
    const [runId = '', xadds = '', list = ''] = String(reply).split(';');
    const values = list === '' ? [] : list.split(',').map(Number);
    if (values.length !== a.keys.length || values.some((v) => !Number.isInteger(v))) throw new Error('unexpected reply shape from discovery-look');
    return { runId, xadds: xadds === '' ? -1 : Number(xadds), values };
  },
};
