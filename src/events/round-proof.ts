// Owns the proof that lets the event reader's full round (standalone, several groups: every followed stream named,
// ten XREADs of 100 at 1,000 queues) name only the streams that moved. One atomic step (MULTI) reads Redis's count of
// XADD calls (INFO commandstats, which counts those of scripts and transactions too, failed ones included) and XREADs
// the moved streams to their end. Between two steps every XADD counted either left an entry that some read of ours
// returned since the first step, or not: when the count grew by exactly the entries read since (each read reaching
// its stream's end), no stream outside the step's reads got an entry, and every followed stream is at its end at the
// second step, as after a full round. A paced stream (read once per pace, event-reader.ts readPaced) is weighed
// instead of read: its entries-added (XINFO STREAM) in the same step, and what it gained since the last step stands
// for its reads; it is never claimed at its end (its lag is open, the heartbeat does not vouch for it), and a stream
// weighed at the last step is weighed once more when it stops being paced, and read. The first step's reads bring
// its streams to their end; a stream it left out must be read to its end before a proof counts it (the full round
// that follows a step that proved nothing), and an entry read from such a stream may be older than the step: then
// the next step proves nothing either.
// The equality can only hold falsely if a stream gained entries without an XADD counted: RENAME, COPY, MOVE, SWAPDB,
// RESTORE, DEBUG (RELOAD), a replica's full sync (REPLICAOF, FAILOVER); if a weighed stream's entries-added moved
// without one (XSETID ... ENTRIESADDED); or if the counts restarted (CONFIG RESETSTAT, a restart: the run id). Any of
// those between two steps, as every other doubt (a read cut by COUNT, a stream not at its end at the last step, XADDs
// to streams not followed, failed or NOMKSTREAM XADDs, trimmed entries, a weighed stream re-created), proves nothing,
// and the reader reads a real full round.
import type { RawEntry } from './stream-reply.js';

/** Commands after any of which no proof holds (INFO commandstats names, lower case). */
export const PROOF_WATCHED = [
  'rename',
  'renamenx',
  'copy',
  'move',
  'swapdb',
  'restore',
  'restore-asking',
  'debug',
  'config|resetstat',
  'replicaof',
  'slaveof',
  'failover',
  'xsetid',
];

/** What the proof needs of the connection (ioredis, standalone). */
export interface ProofClient {
  multi(): {
    call(command: string, ...args: string[]): unknown;
    xreadBuffer(...args: Array<string | number>): unknown;
    exec(): Promise<Array<[Error | null, unknown]> | null>;
  };
}

interface Stats {
  runId: string;
  xadd: number;
  info: number;
  /** The watched commands' calls, as one string. */
  watched: string;
}

export interface ProofRead {
  stream: string;
  /** The id after which it is read. */
  id: string;
}

export interface ProofStep {
  /** Every followed stream was at its end at the step. */
  proved: boolean;
  /** The entries of each stream read (only those that returned any), in the order of `reads`. */
  batches: Array<{ stream: string; raw: RawEntry[] }>;
}

/**
 * After this many steps in a row that had a base and proved nothing (XADDs to streams nobody here follows, another
 * application's, keep every proof from holding), steps rest for 1, 2, 4, then 8 full rounds: a step that cannot prove
 * costs an INFO and reads that the full round repeats (about a tenth of a full round at 1,000 queues).
 */
const FAILS_BEFORE_REST = 3;
const MAX_REST = 8;

export class RoundProof {
  private base: Stats | undefined;
  /** Steps in a row that had a base and proved nothing. */
  private failures = 0;
  /** Full rounds still to be read without a step. */
  private rest = 0;
  /** Entries read since the base, by any read. */
  private read = 0;
  /** An entry read since the base may be older than it. */
  private tainted = false;
  /** Streams that were not at their end at the base and have not been read to their end since. */
  private unaligned = new Set<string>();
  /** Streams weighed at the base instead of read (the paced ones): their entries-added then. */
  private weighed = new Map<string, number>();
  /** False once Redis refused the step (an ACL without +info, say): no more steps. */
  usable = true;

  constructor(private readonly connection: () => ProofClient) {}

  /** Whether to take a step before the full round due now (else the round is read as it is, and is no base). */
  due(): boolean {
    if (!this.usable) return false;
    if (this.rest === 0) return true;
    this.rest -= 1;
    this.base = undefined;
    return false;
  }

  /** The followed streams changed, or their positions were reloaded: nothing read before is a base. */
  invalidate(): void {
    this.base = undefined;
  }

  /** Whether `stream` was weighed at the base: the next step may weigh it again instead of reading it. */
  weighs(stream: string): boolean {
    return this.base !== undefined && this.weighed.has(stream);
  }

  /** A read of `stream` returned `entries`; `atEnd`: it reached the stream's end (fewer than its COUNT). */
  observe(stream: string, entries: number, atEnd: boolean): void {
    if (this.base === undefined || this.weighed.has(stream)) return;
    this.read += entries;
    if (!this.unaligned.has(stream)) return;
    if (entries > 0) this.tainted = true;
    if (atEnd) this.unaligned.delete(stream);
  }

  /**
   * The atomic step: the XADD count, the entries-added of `weigh` and of the streams weighed at the base (XINFO
   * STREAM), and `reads` (at most `count` entries each, `perCall` streams per XREAD). `all`: every followed stream.
   * Proved when every stream neither weighed at the base nor in `weigh` is at its end now (a weighed one, a paced
   * stream, may hold entries not read yet: its lag is open); the step is the next proof's base either way. Rejects
   * when Redis fails it (no base then).
   */
  async step(all: Iterable<string>, reads: readonly ProofRead[], count: number, perCall: number, weigh: readonly string[] = []): Promise<ProofStep> {
    let replies: Array<[Error | null, unknown]>;
    const weighedBefore = this.base === undefined ? new Map<string, number>() : this.weighed;
    const weighing = [...new Set([...weigh, ...weighedBefore.keys()])];
    try {
      const tx = this.connection().multi();
      tx.call('INFO', 'server', 'commandstats');
      for (const stream of weighing) tx.call('XINFO', 'STREAM', stream);
      for (let i = 0; i < reads.length; i += perCall) {
        const part = reads.slice(i, i + perCall);
        tx.xreadBuffer('COUNT', count, 'STREAMS', ...part.map((r) => r.stream), ...part.map((r) => r.id));
      }
      replies = (await tx.exec()) ?? [];
      // An XINFO may fail on its own (the stream is gone): that stream's weight is unknown, the rest stands.
      const failed = replies.find(([e], i) => e && (i === 0 || i > weighing.length));
      if (failed || replies.length !== 1 + weighing.length + Math.ceil(reads.length / perCall)) throw failed?.[0] ?? new Error('MULTI failed');
    } catch (err) {
      this.base = undefined;
      if (/NOPERM|unknown command/i.test((err as Error).message)) this.usable = false;
      throw err;
    }
    const stats = parseStats(String(replies[0]?.[1]));
    const added = new Map<string, number>();
    weighing.forEach((stream, i) => {
      const [err, reply] = replies[1 + i] ?? [];
      added.set(stream, err ? -1 : entriesAdded(reply));
    });
    const batches: ProofStep['batches'] = [];
    const returned = new Map<string, number>();
    for (const [, reply] of replies.slice(1 + weighing.length)) {
      for (const [key, raw] of (reply as Array<[Buffer, RawEntry[]]> | null) ?? []) {
        if (raw.length === 0) continue;
        const stream = key.toString();
        batches.push({ stream, raw });
        returned.set(stream, raw.length);
      }
    }
    let complete = true;
    for (const { stream } of reads) {
      const n = returned.get(stream) ?? 0;
      if (n >= count) complete = false;
      this.observe(stream, n, n < count);
    }
    // What the streams weighed at the base gained since: every XADD they took, read or not.
    let gained = 0;
    for (const [stream, before] of weighedBefore) {
      const now = added.get(stream) ?? -1;
      if (before < 0 || now < before) gained = NaN;
      else gained += now - before;
    }
    const b = this.base;
    const proved =
      b !== undefined &&
      complete &&
      !this.tainted &&
      this.unaligned.size === 0 &&
      stats.runId !== '' &&
      stats.runId === b.runId &&
      stats.watched === b.watched &&
      stats.info > b.info &&
      stats.xadd - b.xadd === this.read + gained;
    if (proved) this.failures = 0;
    else if (b !== undefined && ++this.failures >= FAILS_BEFORE_REST) this.rest = Math.min(2 ** (this.failures - FAILS_BEFORE_REST), MAX_REST);
    this.base = stats;
    this.read = 0;
    this.tainted = false;
    // Not at their end for the next proof: proved, only the streams weighed before that this step did not read to
    // their end; else any stream but those. Either way not the ones weighed now (the next proof weighs them again).
    const atEnd = new Set(reads.filter((r) => (returned.get(r.stream) ?? 0) < count).map((r) => r.stream));
    this.weighed = new Map(weigh.filter((w) => (added.get(w) ?? -1) >= 0).map((w) => [w, added.get(w) as number]));
    this.unaligned = new Set([...(proved ? weighedBefore.keys() : all)].filter((s) => !atEnd.has(s) && !this.weighed.has(s)));
    return { proved, batches };
  }
}

/** entries-added in an XINFO STREAM reply (flat name/value pairs); -1: absent (Redis < 7). */
function entriesAdded(reply: unknown): number {
  if (!Array.isArray(reply)) return -1;
  const k = reply.findIndex((x) => String(x) === 'entries-added');
  const n = k >= 0 ? Number(reply[k + 1]) : NaN;
  return Number.isFinite(n) ? n : -1;
}

/** The run id, XADD's and INFO's calls, and the watched commands' calls in INFO server + commandstats. */
function parseStats(info: string): Stats {
  const calls = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1] as string, Number(m[2]));
  return {
    runId: /^run_id:(\w+)/m.exec(info)?.[1] ?? '',
    xadd: calls.get('xadd') ?? 0,
    info: calls.get('info') ?? 0,
    watched: PROOF_WATCHED.map((c) => calls.get(c) ?? 0).join(','),
  };
}
