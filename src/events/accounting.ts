// Owns the cumulative event accounting of one queue and its encoding as the fields of one Redis hash:
// counters, histogram buckets and the reader's own health counters. The leader keeps an instance in memory
// and writes back only the fields a batch changed; every replica parses the same hash into plain data.
import { EVENT_BUCKETS_SECONDS, bucketIndex, nativeBucketIndex } from './buckets.js';

import {
  EVENT_COUNTERS,
  EVENT_HISTOGRAMS,
  type CounterSeries,
  type EventCounter,
  type EventHistogram,
  type HistogramLabel,
  type HistogramSeries,
  type QueueEventStats,
  type ReaderHealth,
} from '../domain/event-accounting.js';

// The accounting's plain shape lives in domain/ (every layer renders it); re-exported for the state machine's users.
export { EVENT_COUNTERS, EVENT_HISTOGRAMS } from '../domain/event-accounting.js';
export type {
  CounterSeries,
  EventCounter,
  EventHistogram,
  HistogramLabel,
  HistogramSeries,
  QueueEventStats,
  ReaderHealth,
} from '../domain/event-accounting.js';

/** Reader health counters the leader keeps; the SCRIPT_FIELDS are written by the commit script. */
export const READER_COUNTERS = ['read', 'unmatched', 'evicted'] as const;
export type ReaderCounter = (typeof READER_COUNTERS)[number];

/** Hash fields owned by the scripts (src/redis/lua/events-*.lua), never written from memory; `gen` fences them. */
export const SCRIPT_FIELDS = {
  cursor: 'r|cursor',
  seen: 'r|seen',
  lost: 'r|lost',
  lagMs: 'r|lag_ms',
  commitMs: 'r|commit_ms',
  graceMs: 'r|grace_ms',
  heartbeat: 'r|hb',
  gen: 'r|gen',
} as const;

/** Field of the events meta hash where a shard's reader writes its heartbeat (Redis clock ms; see EventReader). */
export function heartbeatField(shard = 'all'): string {
  return `hb|${shard}`;
}

/** `job_name` value for jobs whose name is not tracked: over the cap, or the reader never saw their `added`. */
export const OTHER_JOB_NAME = '__other__';

// join() makes flat strings: a template literal makes a rope, which a Map key keeps beside its flattened copy.
const counterField = (c: EventCounter | ReaderCounter, jobName: string) => ['c', c, jobName].join('|');
const histField = (h: EventHistogram, label: string, part: number | string, jobName: string) => ['h', h, label, part, jobName].join('|');
/** Part of a native bucket's field: `n<index>`, and `nz` for the zero bucket. */
const NATIVE_PART = 'n';
const NATIVE_ZERO = 'nz';
const readerField = (c: ReaderCounter) => `r|${c}`;

/** Receives what the lifecycle machine derives from the stream. */
export interface AccountingSink {
  count(counter: EventCounter, jobName: string): void;
  observe<H extends EventHistogram>(histogram: H, label: HistogramLabel<H>, jobName: string, ms: number): void;
  reader(counter: ReaderCounter, n?: number): void;
}

export class QueueAccounting implements AccountingSink {
  private readonly values = new Map<string, number>();
  /** Created at the first change since the last commit (most queues of a large fleet have none between commits). */
  private dirty: Set<string> | undefined;
  /**
   * Field names per histogram series (buckets…, sum, count), each built the first time it is used: observe() runs
   * for every attempt, and a series fills few of its buckets (all of them, for 1,000 busy queues, were ~10 MB).
   * Created at the first observation (an empty Map per queue without traffic was ~2.7 MB at 10,000 queues).
   */
  private seriesFields: Map<string, Array<string | undefined>> | undefined;

  /** Starts from a persisted hash (HGETALL), e.g. when a replica becomes leader. */
  static fromHash(hash: Record<string, string>): QueueAccounting {
    const acc = new QueueAccounting();
    for (const [field, raw] of Object.entries(hash)) {
      if (field.startsWith('c|') || field.startsWith('h|') || field.startsWith('r|')) acc.values.set(field, Number(raw));
    }
    return acc;
  }

  count(counter: EventCounter, jobName: string): void {
    this.add(counterField(counter, jobName), 1);
  }

  observe<H extends EventHistogram>(histogram: H, label: HistogramLabel<H>, jobName: string, ms: number): void {
    // Integer milliseconds keep the persisted sum exact; stream ids and due times have 1 ms resolution.
    const v = Math.max(0, Math.round(ms));
    const key = `${histogram}|${label}|${jobName}`;
    this.seriesFields ??= new Map();
    let f = this.seriesFields.get(key);
    if (!f) {
      f = new Array<string | undefined>(EVENT_BUCKETS_SECONDS.length + 3);
      this.seriesFields.set(key, f);
    }
    const n = EVENT_BUCKETS_SECONDS.length + 1;
    const field = (i: number, part: number | string) => (f[i] ??= histField(histogram, label, part, jobName));
    const b = bucketIndex(v);
    this.add(field(b, b), 1);
    this.add(field(n, 'sum'), v);
    this.add(field(n + 1, 'count'), 1);
    // The native (exponential) bucket too: one more field per populated bucket, so /metrics can serve native
    // histograms whose buckets are exact counts rather than a redistribution of the fixed ones.
    this.add(histField(histogram, label, v === 0 ? NATIVE_ZERO : `${NATIVE_PART}${nativeBucketIndex(v / 1000)}`, jobName), 1);
  }

  reader(counter: ReaderCounter, n = 1): void {
    this.add(readerField(counter), n);
  }

  /** Job names that already own a label value (rebuilds the cap after a leader change). */
  jobNames(): Set<string> {
    const names = new Set<string>();
    for (const field of this.values.keys()) {
      const name = field.startsWith('c|added|') ? field.slice('c|added|'.length) : undefined;
      if (name !== undefined && name !== OTHER_JOB_NAME && name !== '') names.add(name);
    }
    return names;
  }

  /** Changed fields as a flat HSET argument list; clearDirty() forgets them once they are committed. */
  dirtyFields(): string[] {
    const out: string[] = [];
    for (const f of this.dirty ?? []) out.push(f, String(this.values.get(f) ?? 0));
    return out;
  }

  clearDirty(): void {
    this.dirty = undefined;
  }

  get(field: string): number {
    return this.values.get(field) ?? 0;
  }

  /** For tests and the leader's own view: the same plain data read-back produces. */
  toStats(): QueueEventStats {
    const hash: Record<string, string> = {};
    for (const [f, v] of this.values) hash[f] = String(v);
    return parseQueueHash(hash);
  }

  private add(field: string, n: number): void {
    this.values.set(field, (this.values.get(field) ?? 0) + n);
    (this.dirty ??= new Set()).add(field);
  }
}

/**
 * Parses one queue's persisted hash into plain data (cumulative buckets, seconds). With `nowMs` (Redis
 * clock) the lag is aged from the last commit: the oldest entry unread then is older by the time since, and
 * a caught-up queue whose refresh is later than the leader's grace has events nobody may be reading.
 */
export function parseQueueHash(hash: Record<string, string>, nowMs?: number, heartbeats?: Readonly<Record<string, string>>): QueueEventStats {
  const counters: CounterSeries[] = [];
  const hist = new Map<string, HistogramSeries & { raw: number[] }>();
  const reader: ReaderHealth = { read: 0, lost: 0, unmatched: 0, evicted: 0, lagSeconds: 0 };
  const nb = EVENT_BUCKETS_SECONDS.length;

  for (const [field, raw] of Object.entries(hash)) {
    const value = Number(raw);
    const parts = field.split('|');
    if (parts[0] === 'c' && parts.length >= 3) {
      const counter = parts[1] as EventCounter;
      if ((EVENT_COUNTERS as readonly string[]).includes(counter)) counters.push({ counter, jobName: parts.slice(2).join('|'), value });
    } else if (parts[0] === 'h' && parts.length >= 5) {
      const histogram = parts[1] as EventHistogram;
      if (!(histogram in EVENT_HISTOGRAMS)) continue;
      const label = parts[2] as string;
      const jobName = parts.slice(4).join('|');
      const key = `${histogram}|${label}|${jobName}`;
      let s = hist.get(key);
      if (!s) {
        s = { histogram, label, jobName, buckets: [], count: 0, sumSeconds: 0, native: new Map(), nativeZero: 0, raw: new Array<number>(nb + 1).fill(0) };
        hist.set(key, s);
      }
      const part = parts[3] as string;
      if (part === 'sum') s.sumSeconds = value / 1000;
      else if (part === 'count') s.count = value;
      else if (part === NATIVE_ZERO) s.nativeZero = value;
      else if (part.startsWith(NATIVE_PART)) {
        const i = Number(part.slice(NATIVE_PART.length));
        if (Number.isInteger(i)) s.native!.set(i, value);
      } else {
        const i = Number(part);
        if (Number.isInteger(i) && i >= 0 && i <= nb) s.raw[i] = value;
      }
    } else if (field === readerField('read')) reader.read = value;
    else if (field === readerField('unmatched')) reader.unmatched = value;
    else if (field === readerField('evicted')) reader.evicted = value;
    else if (field === SCRIPT_FIELDS.lost) reader.lost = value;
  }
  reader.lagSeconds = lagMs(hash, nowMs, heartbeats) / 1000;

  const histograms: HistogramSeries[] = [];
  for (const { raw, ...s } of hist.values()) {
    let acc = 0;
    s.buckets = raw.slice(0, nb).map((n) => (acc += n));
    histograms.push(s);
  }
  return { counters, histograms, reader };
}

/** A queue's reader lag (ms) from its stored hash, aged to `nowMs` with the shards' heartbeats (parseQueueHash's). */
export function lagMs(hash: Record<string, string>, nowMs: number | undefined, heartbeats: Readonly<Record<string, string>> = {}): number {
  const stored = Number(hash[SCRIPT_FIELDS.lagMs] ?? 0);
  const commitMs = Number(hash[SCRIPT_FIELDS.commitMs]);
  if (nowMs === undefined || !Number.isFinite(commitMs)) return stored;
  if (stored > 0) return stored + Math.max(0, nowMs - commitMs);
  // Caught up at its last commit: still caught up at the start of the shard's last complete round, if later.
  const beat = Number(heartbeats[hash[SCRIPT_FIELDS.heartbeat] ?? ''] ?? 0);
  const since = Math.max(0, nowMs - Math.max(commitMs, Number.isFinite(beat) ? beat : 0));
  return Math.max(0, since - Number(hash[SCRIPT_FIELDS.graceMs] ?? 0));
}
