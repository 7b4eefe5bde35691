// Owns turning stream replies (XREAD, XREVRANGE) into the entries the lifecycle machine reads. Only the
// fields it uses become strings; the others (returnvalue, failedReason, data, …) are measured for the read
// budget and skipped, so a 5 MB return value is never copied into a JS string.
// The hot path is parseXreadReply: it walks the raw RESP2 bytes of an XREAD reply (redis/raw-connection.ts)
// in one pass. Through ioredis every id, field and value became its own Buffer inside nested arrays before
// a field name could even be compared, which was most of the reader's CPU (docs/benchmarks.md, Event reader).
import type { EntryFields, StreamEntry } from './lifecycle.js';

/** What one stream returned in one read. */
export interface StreamBatch {
  stream: string;
  entries: StreamEntry[];
  /** Bytes of the largest entry's field names and values: what the read budget sizes the next reads by. */
  largest: number;
}

/** An entry as ioredis's *Buffer commands return it. */
export type RawEntry = [id: Buffer, fields: Buffer[]];

const CR = 13;
const DASH = 45;
const STAR = 42;
const DOLLAR = 36;

/**
 * Event names (and `prev` states) BullMQ writes, returned as these very strings instead of a new one per
 * entry. Anything else is decoded as it is.
 */
const KNOWN_VALUES = [
  'added',
  'waiting',
  'active',
  'completed',
  'failed',
  'delayed',
  'progress',
  'stalled',
  'removed',
  'drained',
  'waiting-children',
  'deduplicated',
  'debounced',
  'retries-exhausted',
  'duplicated',
  'paused',
  'resumed',
  'cleaned',
  'prioritized',
];
const KNOWN_BY_LENGTH: Array<Array<[Buffer, string]>> = [];
for (const v of KNOWN_VALUES) (KNOWN_BY_LENGTH[v.length] ??= []).push([Buffer.from(v), v]);

function knownOrDecoded(b: Buffer, start: number, end: number): string {
  const candidates = KNOWN_BY_LENGTH[end - start];
  if (candidates) {
    next: for (const [bytes, value] of candidates) {
      for (let i = 0; i < bytes.length; i++) if (bytes[i] !== b[start + i]) continue next;
      return value;
    }
  }
  return b.toString('utf8', start, end);
}

/** Stores one field of an entry if the lifecycle uses it: name kb[k, k+kl), value vb[v, v+vl); names compared as bytes. */
function keep(f: EntryFields, kb: Buffer, k: number, kl: number, vb: Buffer, v: number, vl: number): void {
  const c = kb[k];
  if (kl === 5) {
    if (c === 101 && kb[k + 1] === 118 && kb[k + 2] === 101 && kb[k + 3] === 110 && kb[k + 4] === 116)
      f.event = knownOrDecoded(vb, v, v + vl); // event
    else if (c === 106 && kb[k + 1] === 111 && kb[k + 2] === 98 && kb[k + 3] === 73 && kb[k + 4] === 100)
      f.jobId = vb.toString('utf8', v, v + vl); // jobId
    else if (c === 100 && kb[k + 1] === 101 && kb[k + 2] === 108 && kb[k + 3] === 97 && kb[k + 4] === 121) f.delay = vb.toString('utf8', v, v + vl); // delay
  } else if (kl === 4) {
    if (c === 112 && kb[k + 1] === 114 && kb[k + 2] === 101 && kb[k + 3] === 118)
      f.prev = knownOrDecoded(vb, v, v + vl); // prev
    else if (c === 110 && kb[k + 1] === 97 && kb[k + 2] === 109 && kb[k + 3] === 101) f.name = vb.toString('utf8', v, v + vl); // name
  } else if (kl === 17 && c === 100 && kb.toString('latin1', k, k + kl) === 'deduplicatedJobId') {
    f.deduplicatedJobId = vb.toString('utf8', v, v + vl);
  }
}

/** The `ms` part of a stream id held in b[start, end). */
function idMs(b: Buffer, start: number, end: number): number {
  let ms = 0;
  for (let i = start; i < end; i++) {
    const c = b[i] as number;
    if (c === DASH) break;
    ms = ms * 10 + c - 48;
  }
  return ms;
}

/** A read position in one complete RESP2 reply. */
class Reader {
  p = 0;
  constructor(readonly b: Buffer) {}

  /** The number after a `*` or `$` type byte (negative for nulls), moving past its CRLF. */
  header(type: number): number {
    const b = this.b;
    const end = b.length;
    let i = this.p;
    if (b[i] !== type) throw malformed(b, i);
    i++;
    const neg = b[i] === DASH;
    if (neg) i++;
    let v = 0;
    for (; i < end; i++) {
      const c = b[i] as number;
      if (c === CR) break;
      if (c < 48 || c > 57) throw malformed(b, i);
      v = v * 10 + c - 48;
    }
    if (i + 1 >= end) throw malformed(b, i);
    this.p = i + 2;
    return neg ? -v : v;
  }

  /** A bulk string's length; the position is left at its first byte (skip with `p += length + 2`). */
  bulk(): number {
    const n = this.header(DOLLAR);
    if (n < 0 || this.p + n + 2 > this.b.length) throw malformed(this.b, this.p);
    return n;
  }
}

function malformed(b: Buffer, at: number): Error {
  return new Error(`malformed stream reply at byte ${at} of ${b.length}`);
}

/**
 * One complete XREAD reply in RESP2 (`*-1` when nothing was there) as a batch per stream that returned
 * entries. Field values are decoded as UTF-8, like ioredis does.
 */
export function parseXreadReply(b: Buffer): StreamBatch[] {
  const r = new Reader(b);
  const streams = r.header(STAR);
  const out: StreamBatch[] = [];
  for (let s = 0; s < streams; s++) {
    if (r.header(STAR) !== 2) throw malformed(b, r.p);
    const kl = r.bulk();
    const stream = b.toString('utf8', r.p, r.p + kl);
    r.p += kl + 2;
    const n = r.header(STAR);
    const entries: StreamEntry[] = new Array(Math.max(n, 0));
    let largest = 0;
    for (let e = 0; e < n; e++) {
      if (r.header(STAR) !== 2) throw malformed(b, r.p);
      const il = r.bulk();
      const id = b.toString('latin1', r.p, r.p + il);
      const ms = idMs(b, r.p, r.p + il);
      r.p += il + 2;
      const fields: EntryFields = { event: undefined, jobId: undefined, prev: undefined, delay: undefined, name: undefined, deduplicatedJobId: undefined };
      const nf = r.header(STAR); // -1 (no fields) only for deleted entries of XREADGROUP, never here
      let size = 0;
      for (let i = 0; i < nf; i += 2) {
        const fl = r.bulk();
        const k = r.p;
        r.p += fl + 2;
        size += fl;
        if (i + 1 === nf) break; // an odd field list: a name without a value is ignored
        const vl = r.bulk();
        const v = r.p;
        r.p += vl + 2;
        size += vl;
        keep(fields, b, k, fl, b, v, vl);
      }
      if (size > largest) largest = size;
      entries[e] = { id, ms, fields };
    }
    if (entries.length > 0) out.push({ stream, entries, largest });
  }
  if (r.p !== b.length) throw malformed(b, r.p);
  return out;
}

/** Entries as ioredis returns them (Cluster reads, history replay), decoded the same way. */
export function decodeEntries(raw: readonly RawEntry[]): { entries: StreamEntry[]; largest: number } {
  const entries: StreamEntry[] = new Array(raw.length);
  let largest = 0;
  for (let e = 0; e < raw.length; e++) {
    const [idBuf, flat] = raw[e] as RawEntry;
    const fields: EntryFields = { event: undefined, jobId: undefined, prev: undefined, delay: undefined, name: undefined, deduplicatedJobId: undefined };
    let size = 0;
    for (let i = 0; i < flat.length; i += 2) {
      const k = flat[i] as Buffer;
      size += k.length;
      const v = flat[i + 1];
      if (v === undefined) break;
      size += v.length;
      keep(fields, k, 0, k.length, v, 0, v.length);
    }
    if (size > largest) largest = size;
    entries[e] = { id: idBuf.toString(), ms: idMs(idBuf, 0, idBuf.length), fields };
  }
  return { entries, largest };
}
