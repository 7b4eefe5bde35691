// Owns the collector's reads of BullMQ on Redis (domain/backend.ts, QueueStateSource): each queue's state in
// read-only Lua calls (a group of queues per call, so no call runs long; in a Cluster a group shares a slot), the
// expired locks of long active lists in pages, and worker connections from CLIENT LIST on every master (sent again
// only when INFO says the connections or their names may have changed). Calls are auto-pipelined, so a collection
// costs about one round trip per node.
import type { BackendLink, QueueLook, QueueStateSource, WorkerCount } from '../domain/backend.js';
import { queueId, type QueueRef } from '../domain/queue-ref.js';
import type { Logger } from '../log/logger.js';
import { connectionState, isCluster, masters, type RedisClient } from './connection.js';
import { queueBase, queueKey, workerClientName } from './keys.js';
import { countOrphanedActive, getQueueStates } from './lua-scripts.js';
import { bindScript, type CallOf } from './scripts.js';
import { groupBySlot } from './slots.js';

export interface RedisQueueStateSourceOptions {
  redis: RedisClient;
  log: Logger;
  /** Queues per Lua call: 16 queues cost Redis ~0.25 ms (bench/collector.ts). */
  groupSize?: number;
  /** Ids of a long active list checked per call after the group call (paged from its right end). */
  orphanPageSize?: number;
  /**
   * Group calls in flight at once (default 64: ~1,000 queues, ~20 ms of Redis time). Each call's command timeout
   * runs from when it is sent, so with every group of 50,000 queues sent at once the last ones waited behind
   * 3,000 others and timed out on a busy Redis, failing the whole collection; in waves, a call waits for at most
   * one wave.
   */
  maxInFlight?: number;
}

/**
 * What says a server's connections and their names are the ones of a CLIENT LIST sent before: its run_id, the
 * connections open and ever accepted (no new one and as many open: the same ones), and the commands that name a
 * connection (CLIENT SETNAME, HELLO ... SETNAME) or unname it (RESET). Redis >= 7 (several INFO sections at once).
 */
const CONNECTION_FIELDS = ['run_id', 'connected_clients', 'total_connections_received', 'cmdstat_client\\|setname', 'cmdstat_hello', 'cmdstat_reset'];

function connectionEvidence(info: string): string {
  return CONNECTION_FIELDS.map((f) => new RegExp(`^${f}:(?:calls=)?([^,\\r\\n]*)`, 'm').exec(info)?.[1] ?? '').join(' ');
}

export class RedisQueueStateSource implements QueueStateSource {
  private clientListRefused = false;
  /** Per master, its connection evidence when CLIENT LIST was last sent, and that answer. */
  private lastLists: { evidence: string[]; lists: string[] } | undefined;
  private readonly getQueueStates: CallOf<typeof getQueueStates>;
  private readonly countOrphanedActive: CallOf<typeof countOrphanedActive>;

  constructor(private readonly o: RedisQueueStateSourceOptions) {
    this.getQueueStates = bindScript(o.redis, getQueueStates);
    this.countOrphanedActive = bindScript(o.redis, countOrphanedActive);
  }

  async read(refs: readonly QueueRef[], activeCheckLimit: number): Promise<QueueLook[]> {
    const groups = groupBySlot(refs, queueBase, this.o.groupSize ?? 16, isCluster(this.o.redis));
    const wave = Math.max(1, this.o.maxInFlight ?? 64);
    const replies: Array<Awaited<ReturnType<typeof this.getQueueStates>>> = [];
    for (let start = 0; start < groups.length; start += wave) {
      const calls = groups.slice(start, start + wave).map((g) => this.getQueueStates({ bases: g.map(queueBase), activeCheckLimit }));
      replies.push(...(await Promise.all(calls)));
    }
    const out: QueueLook[] = [];
    for (const [g, group] of groups.entries()) {
      const { nowMs, queues } = replies[g]!;
      for (const [i, ref] of group.entries()) out.push({ ref, nowMs, reading: queues[i] });
    }
    return out;
  }

  async countOrphans(ref: QueueRef, from: number, total: number): Promise<number> {
    const page = this.o.orphanPageSize ?? 256;
    // The group call checked the `from` newest ids (the left end); the rest are paged from the right end, which
    // jobs taken meanwhile (LPUSHed on the left) do not shift.
    const remaining = total - from;
    const calls: Array<Promise<number>> = [];
    for (let done = 0; done < remaining; done += page) {
      const size = Math.min(page, remaining - done);
      calls.push(this.countOrphanedActive({ activeKey: queueKey(ref, 'active'), base: queueBase(ref), start: -(done + size), stop: -(done + 1) }));
    }
    return (await Promise.all(calls)).reduce((a, b) => a + b, 0);
  }

  /**
   * Worker connections per queue from CLIENT LIST, or undefined where the command is not allowed. In a Cluster a
   * worker's named connection shows on every node it talks to, so the busiest node's count is taken, not the sum.
   */
  async workers(refs: readonly QueueRef[], prefixes: readonly string[]): Promise<WorkerCount | undefined> {
    if (this.clientListRefused) return undefined;
    let lists: string[];
    try {
      lists = await this.clientLists();
    } catch (err) {
      const msg = (err as Error).message;
      if (/NOPERM|unknown command|ERR.*CLIENT|disabled/i.test(msg)) {
        this.clientListRefused = true;
        this.o.log.warn({ err: msg }, 'CLIENT LIST is not allowed on this Redis: bullmq_queue_workers will be absent');
        return undefined;
      }
      throw err;
    }
    const byName = new Map<string, string>();
    for (const ref of refs) byName.set(workerClientName(ref), queueId(ref));
    const best = new Map<string, number>();
    const unknown = new Map<string, QueueRef>();
    for (const list of lists) {
      const counts = new Map<string, number>();
      for (const line of list.split('\n')) {
        const m = / name=(\S+)/.exec(line);
        if (!m) continue;
        const name = m[1]!;
        const w = name.indexOf(':w:');
        const id = byName.get(w === -1 ? name : name.slice(0, w));
        if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
        else {
          const ref = workerQueue(name, prefixes);
          if (ref) unknown.set(queueId(ref), ref);
        }
      }
      for (const [id, n] of counts) best.set(id, Math.max(best.get(id) ?? 0, n));
    }
    return { byQueue: best, unknown: [...unknown.values()].slice(0, 100) };
  }

  /**
   * Each master's CLIENT LIST, or the last answer while INFO says nothing changed since (about 0.1 ms of Redis time
   * against ~10 µs per connection listed: 2-3 ms with a few hundred worker connections).
   */
  private async clientLists(): Promise<string[]> {
    const nodes = masters(this.o.redis);
    // Unreadable (Redis < 7, INFO denied): CLIENT LIST every time, as before.
    const evidence = await Promise.all(
      nodes.map(async (n) => connectionEvidence(String(await n.call('INFO', 'server', 'clients', 'stats', 'commandstats')))),
    ).catch(() => undefined);
    const last = this.lastLists;
    if (evidence && last && last.evidence.length === evidence.length && evidence.every((e, i) => e === last.evidence[i])) return last.lists;
    const lists = (await Promise.all(nodes.map((n) => n.client('LIST')))) as string[];
    this.lastLists = evidence && { evidence, lists };
    return lists;
  }

  link(): BackendLink {
    return { up: this.o.redis.status === 'ready', ...connectionState(this.o.redis) };
  }
}

/** The queue a BullMQ connection name `<prefix>:<base64(queue)>[:…]` belongs to, under a watched prefix. */
function workerQueue(clientName: string, prefixes: readonly string[]): QueueRef | undefined {
  for (const prefix of prefixes) {
    if (!clientName.startsWith(`${prefix}:`)) continue;
    const encoded = clientName.slice(prefix.length + 1).split(':')[0]!;
    const name = Buffer.from(encoded, 'base64').toString('utf8');
    // Only names that round-trip: anything else is some other client under a similar name.
    if (name !== '' && !name.includes(':') && Buffer.from(name).toString('base64') === encoded) return { prefix, name };
  }
  return undefined;
}
