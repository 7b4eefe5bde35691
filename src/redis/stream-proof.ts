// Owns discovery's proof, on a standalone Redis, that every XADD since its last look went to the events stream of a
// queue it already knows, so that a pass with traffic need not SCAN the keyspace: every way BullMQ creates a queue
// writes an event (collector/discovery.ts). Redis's count of XADD calls and the entries-added of each watched stream
// are read in one atomic script call (discovery-look-n.lua) and compared with the previous call's: when the XADDs
// counted equal the entries the watched streams gained, none went anywhere else. Any doubt is no proof (a stream
// not watched moved, a stream was re-created, another application's stream, Redis < 7), and discovery SCANs:
// false alarms cost a SCAN, a false proof would hide a queue.
// Watched: the known streams whose length moved between two censuses (XLEN of every known stream, taken before each
// SCAN pass), at most MAX_WATCHED, so that the atomic call stays under a millisecond of Redis time (~5-7 µs a stream).
import { queueId, type QueueRef } from '../domain/queue-ref.js';
import type { RedisClient } from './connection.js';
import { queueKey } from './keys.js';
import { discoveryLook } from './lua-scripts.js';
import { bindScript, type CallOf } from './scripts.js';

/** Streams read in the atomic call at most (100 streams: 0.7-0.8 ms of Redis time at load 19 on 2 CPUs). */
export const MAX_WATCHED = 128;
/** Keys per call of a census or a meta check (XLEN or HMGET in a script: 0.4-0.8 ms per 500 on a loaded 2-CPU box). */
const CHUNK = 250;
/** A watched stream that gained nothing in this many proofs in a row is no longer watched. */
const IDLE_PROOFS = 10;
/**
 * More streams moving than MAX_WATCHED (10,000 queues, 1,000 busy): no proof can hold, so the census, ~1 µs per
 * known queue, is not taken at the next this many SCAN passes.
 */
const OVERFLOW_SKIPS = 10;

interface Snapshot {
  runId: string;
  xadds: number;
  /** entries-added per watched queue id (-1: unreadable). */
  added: Map<string, number>;
}

export class StreamProof {
  private readonly look: CallOf<typeof discoveryLook>;
  /** The snapshot the next proof starts from; none after a failed one until restart(). */
  private last: Snapshot | undefined;
  private readonly watched = new Map<string, { ref: QueueRef; idle: number }>();
  /** XLEN per known queue id at the last census. */
  private census: Map<string, number> | undefined;
  private skips = 0;

  constructor(redis: RedisClient) {
    this.look = bindScript(redis, discoveryLook);
  }

  /** Queue ids whose streams the proof reads (for tests and the log). */
  watching(): string[] {
    return [...this.watched.keys()];
  }

  /**
   * Called before a SCAN pass: watches the known streams whose length moved since the last census (and those new
   * to it), then takes the snapshot the next proof starts from. Before the SCAN, so that an XADD landing during the
   * SCAN falls in the next proof's interval, where it must be accounted for.
   */
  async restart(known: readonly QueueRef[]): Promise<void> {
    this.last = undefined;
    if (this.skips > 0) {
      this.skips -= 1;
      return;
    }
    const lengths = await this.chunked('length', known);
    const before = this.census;
    this.census = lengths;
    this.keepKnown(new Set(lengths.keys()));
    // A queue new to the census (found by the last SCAN after its census) may be moving or not: see noted().
    const movers = before ? known.filter((r) => before.has(queueId(r)) && before.get(queueId(r)) !== lengths.get(queueId(r))) : [];
    if (movers.length > MAX_WATCHED) {
      this.watched.clear();
      this.census = undefined;
      this.skips = OVERFLOW_SKIPS;
      return;
    }
    for (const ref of movers) {
      if (this.watched.size >= MAX_WATCHED) break;
      if (!this.watched.has(queueId(ref))) this.watched.set(queueId(ref), { ref, idle: 0 });
    }
    this.last = await this.snapshot();
  }

  /**
   * Called after a SCAN pass with the queues known then: those the census has not seen get their length noted, so
   * that the next census can tell whether they move (a new queue's stream is watched from its second SCAN pass).
   */
  async noted(known: readonly QueueRef[]): Promise<void> {
    if (this.skips > 0) return;
    const census = this.census ?? new Map<string, number>();
    const fresh = known.filter((r) => !census.has(queueId(r)));
    for (const [id, length] of await this.chunked('length', fresh)) census.set(id, length);
    this.census = census;
  }

  /**
   * True when every XADD since the last snapshot went to a watched stream of a queue in `known`; the next proof
   * then starts from now. False (no proof) leaves no snapshot: restart() takes the next one.
   */
  async proves(known: ReadonlySet<string>): Promise<boolean> {
    const last = this.last;
    this.last = undefined;
    if (!last) return false;
    // A stream left out (its queue forgotten) can only make the sums differ, never agree falsely.
    this.keepKnown(known);
    const now = await this.snapshot();
    if (now.runId === '' || now.runId !== last.runId) return false;
    let gained = 0;
    const moved = new Set<string>();
    for (const [id, added] of now.added) {
      const before = last.added.get(id);
      if (before === undefined) continue;
      // Unreadable, or fewer than before (deleted and re-created): what it gained is unknown.
      if (added < 0 || before < 0 || added < before) return false;
      gained += added - before;
      if (added > before) moved.add(id);
    }
    if (now.xadds - last.xadds !== gained) return false;
    for (const [id, w] of this.watched) {
      w.idle = moved.has(id) ? 0 : w.idle + 1;
      if (w.idle >= IDLE_PROOFS) this.watched.delete(id);
    }
    this.last = now;
    return true;
  }

  /** The queues of `refs` whose meta hash no longer holds BullMQ's fields (obliterated, or never a queue). */
  async gone(refs: readonly QueueRef[]): Promise<QueueRef[]> {
    const present = await this.chunked('meta', refs);
    return refs.filter((r) => present.get(queueId(r)) !== 1);
  }

  private keepKnown(known: ReadonlySet<string>): void {
    for (const id of this.watched.keys()) if (!known.has(id)) this.watched.delete(id);
  }

  private async snapshot(): Promise<Snapshot> {
    const watched = [...this.watched];
    const r = await this.look({ mode: 'added', keys: watched.map(([, w]) => queueKey(w.ref, 'events')) });
    return { runId: r.runId, xadds: r.xadds, added: new Map(watched.map(([id], i) => [id, r.values[i]!])) };
  }

  private async chunked(mode: 'length' | 'meta', refs: readonly QueueRef[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let start = 0; start < refs.length; start += CHUNK) {
      const part = refs.slice(start, start + CHUNK);
      const r = await this.look({ mode, keys: part.map((q) => queueKey(q, mode === 'meta' ? 'meta' : 'events')) });
      for (const [i, ref] of part.entries()) out.set(queueId(ref), r.values[i]!);
    }
    return out;
  }
}
