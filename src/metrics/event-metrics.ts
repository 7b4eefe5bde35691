// Renders the persisted event accounting (read back from Redis at collection time, the same on every
// replica) into the job counters, latency histograms and reader-health metrics. Like the queue gauges, the
// series are written as exposition text once per collection and replaced wholesale; when the read-back failed
// they are absent rather than stale. The series budget per queue is in docs/metrics.md (cardinality).
import { dlqSource } from '../domain/queue-snapshot.js';
import { EVENT_BUCKETS_SECONDS, EXPOSED_BUCKETS_SECONDS, NATIVE_SCHEMA } from '../events/buckets.js';
import { EVENT_HISTOGRAMS, type EventCounter, type EventHistogram, type HistogramSeries, type QueueEventStats } from '../events/accounting.js';
import type { QueueEventAccounting } from '../events/read-back.js';
import { Slicer } from '../util/slicer.js';
import { queueId, type QueueRef } from '../domain/queue-ref.js';
import type { HistogramMode } from '../config/sidecar-config.js';
import { METRICS, type MetricDef } from './definitions.js';
import type { Exposition } from './exposition.js';
import { escapeLabel, labelAfter, labelPairs, renderLabels, sameLabels } from './exposition-text.js';
import { FragmentSet, FragmentWriter, type Fragment, type Pairs } from './exposition-fragments.js';

export interface EventsView {
  /** Undefined when the read-back failed. */
  queues: readonly QueueEventAccounting[] | undefined;
  leader: boolean;
  /**
   * queueId()s discovery lists now. The lag of any other queue is not rendered: nobody reads it any more,
   * so it would grow for the whole retention of its accounting (an alert for a deleted queue).
   */
  listed?: ReadonlySet<string>;
}

const COUNTERS: Record<EventCounter, MetricDef> = {
  added: METRICS.jobsAdded,
  completed: METRICS.jobsCompleted,
  failed: METRICS.jobsFailed,
  retried: METRICS.jobsRetried,
  stalled: METRICS.jobsStalled,
  deduplicated: METRICS.jobsDeduplicated,
};
/**
 * Counters that start at their first increment instead of 0 (MetricDef.sparse: the series budget, docs/metrics.md):
 * only queues that use deduplication ever have one, and no alert reads its rate.
 */
const SPARSE_COUNTERS: ReadonlySet<EventCounter> = new Set((Object.keys(COUNTERS) as EventCounter[]).filter((c) => COUNTERS[c].sparse));
const HISTOGRAMS: Record<EventHistogram, MetricDef> = { wait: METRICS.jobWait, processing: METRICS.jobProcessing, e2e: METRICS.jobE2e };
export const HISTOGRAM_KINDS = Object.keys(EVENT_HISTOGRAMS) as EventHistogram[];
// Label names come from the definitions: a queue's set (rendered once per queue) and the optional job name the
// counters and histograms add to it. The accounting keeps attempts and outcomes apart (the status board reads
// them); /metrics sums them: no dashboard or alert reads a latency by attempt or outcome, and at 10 series per
// classic histogram the split was most of a queue's series.
const QUEUE_LABELS = METRICS.exporterEventsRead.labels;
type ReaderStats = QueueEventAccounting['stats']['reader'];
const READER: ReadonlyArray<{ def: MetricDef; value: (r: ReaderStats) => number }> = [
  { def: METRICS.exporterEventsRead, value: (r) => r.read },
  { def: METRICS.exporterEventsLost, value: (r) => r.lost },
  // Zero in a healthy deployment, and no alert reads them: they appear with their first count.
  { def: METRICS.exporterEventsUnmatched, value: (r) => r.unmatched },
  { def: METRICS.exporterEventsEvicted, value: (r) => r.evicted },
  { def: METRICS.exporterEventsLag, value: (r) => r.lagSeconds },
];
sameLabels([...READER.map((r) => r.def), METRICS.dlqAdded], QUEUE_LABELS);
const JOB_NAME = labelAfter(METRICS.jobsAdded, QUEUE_LABELS);
const NAMED_LABELS = [...QUEUE_LABELS, JOB_NAME];
sameLabels([...Object.values(COUNTERS), ...Object.values(HISTOGRAMS)], NAMED_LABELS);
const [PREFIX_LABEL] = QUEUE_LABELS;
const LE = [...EXPOSED_BUCKETS_SECONDS.map((b) => `le="${b}"`), 'le="+Inf"'];
/** Where each exposed bound sits among the stored ones (the +Inf bucket is `count`). */
const EXPOSED_AT = EXPOSED_BUCKETS_SECONDS.map((b) => {
  const i = EVENT_BUCKETS_SECONDS.indexOf(b);
  if (i < 0) throw new Error(`exposed bucket ${b} is not a stored bound`);
  return i;
});
/**
 * Breadth of the native histograms' zero bucket: observations are whole milliseconds, so it holds exactly the
 * 0 ms ones. Non-zero also marks a histogram without observations as native to Prometheus (its parser takes a
 * histogram with no spans and a zero threshold of 0 for a classic one).
 */
export const NATIVE_ZERO_THRESHOLD = 2 ** -128;

/** A queue's rendered event series and what they were rendered from (the stats object, as handed in). */
interface Kept {
  stats: QueueEventStats;
  source: string | undefined;
  hasDlq: boolean;
  fragment: Fragment;
}

/** One histogram series: attempts and outcomes (and, per prefix, queues) summed. */
interface Merged {
  /** Cumulative, one per EVENT_BUCKETS_SECONDS bound. */
  buckets: readonly number[];
  count: number;
  sum: number;
  /** Undefined once a part lacks native buckets (observed before the accounting kept them). */
  native: ReadonlyMap<number, number> | undefined;
  zero: number;
  /** False while it is one accounting series, shared rather than copied (the common case: no retry, no failure). */
  owned: boolean;
}

const EMPTY: Merged = { buckets: new Array<number>(EVENT_BUCKETS_SECONDS.length).fill(0), count: 0, sum: 0, native: new Map(), zero: 0, owned: false };

type Part = Pick<HistogramSeries, 'buckets' | 'count' | 'sumSeconds' | 'native' | 'nativeZero'>;

/** Whether a part's native buckets hold all its observations (older accounting may lack them). */
function nativeComplete(h: Part): boolean {
  let n = h.nativeZero ?? 0;
  for (const c of h.native?.values() ?? []) n += c;
  return n === h.count;
}

const asMerged = (h: Part): Merged => ({
  buckets: h.buckets,
  count: h.count,
  sum: h.sumSeconds,
  native: nativeComplete(h) ? (h.native ?? new Map()) : undefined,
  zero: h.nativeZero ?? 0,
  owned: false,
});

/** `m` plus `h`: `m` itself once owned, else a copy (the accounting's arrays and maps are never written). */
function merge(m: Merged | undefined, h: Part): Merged {
  if (m === undefined) return asMerged(h);
  const out: Merged = m.owned ? m : { ...m, buckets: [...m.buckets], native: m.native && new Map(m.native), owned: true };
  const buckets = out.buckets as number[];
  for (let i = 0; i < buckets.length; i += 1) buckets[i]! += h.buckets[i] ?? h.count;
  out.count += h.count;
  out.sum += h.sumSeconds;
  if (!nativeComplete(h)) out.native = undefined;
  if (out.native) {
    const native = out.native as Map<number, number>;
    for (const [i, n] of h.native ?? []) native.set(i, (native.get(i) ?? 0) + n);
    out.zero += h.nativeZero ?? 0;
  }
  return out;
}

/**
 * Event series every exported queue carries (docs/metrics.md, cardinality): its counters from 0 but the sparse
 * ones, bullmq_dlq_added_total (its own 0, or its dead-letter queue's adds) and the reader health but the sparse.
 */
export const EVENT_SERIES_PER_QUEUE = Object.keys(COUNTERS).length - SPARSE_COUNTERS.size + 1 + READER.filter((r) => !r.def.sparse).length;

export class EventMetrics {
  private readonly leader;
  private isLeader = false;
  private generation = 0;
  /** Each rendered queue's fragment, by queueId(), as last rendered, with what it was rendered from. */
  private fragments = new Map<string, Kept>();
  /** Queues whose series the last update rendered again (the others kept their fragment): tests, the bench. */
  lastRendered = 0;
  /** The view of the last update (rendered again for a first protobuf scrape). */
  private lastView: EventsView | undefined;

  constructor(
    private readonly exposition: Exposition,
    private readonly histograms: HistogramMode = 'per-queue',
  ) {
    // The last view again, with the lease as held now (setLeader() may have seen it lapse since).
    exposition.onProtobufWanted('events', () => (this.lastView ? this.update({ ...this.lastView, leader: this.isLeader }) : Promise.resolve()));
    this.leader = exposition.gauge(METRICS.exporterLeader);
    this.leader.set(0);
    void this.update({ queues: undefined, leader: false });
  }

  /** Set at every render too: leadership can lapse between collections (a renewal hung on a stalled link). */
  setLeader(leader: boolean): void {
    if (leader === this.isLeader) return;
    this.isLeader = leader;
    this.leader.set(leader ? 1 : 0);
    // A scrape must not show a lapsed lease as held: it waits for the new body.
    this.exposition.invalidate();
  }

  /**
   * Renders the queues whose accounting changed (the others keep their fragment), in slices (see Slicer); the new
   * series replace the old together once the body is written, unless a later update started meanwhile. Without
   * queues (stale, or the read-back failed) no scrape gets the old series any more, not even while the body is
   * written.
   */
  async update(view: EventsView): Promise<void> {
    const generation = ++this.generation;
    this.lastView = view;
    const slicer = new Slicer();
    // Fragments with their protobuf only while protobuf is scraped; a kept one must have the formats wanted now.
    const proto = this.exposition.protobufWanted();
    this.setLeader(view.leader);
    /** --histograms per-prefix: prefix -> kind -> merged over its queues; a prefix is in it once one of its queues saw a job. */
    const perPrefix = new Map<string, Map<EventHistogram, Merged>>();

    // A dead-letter queue is `<q>-dlq` whose source `<q>` exists (markDeadLetterQueues); sources whose dead-letter
    // queue exists are in dlqSources, the others get bullmq_dlq_added_total 0 (see renderQueue).
    // By queueId() (cached on each ref): only a `<q>-dlq` name costs a string built here.
    const present = new Set<string>();
    for (const { queue } of view.queues ?? []) {
      if (slicer.due()) await slicer.yield();
      present.add(queueId(queue));
    }
    const sourceOf = (queue: QueueRef): string | undefined => {
      const source = dlqSource(queue.name);
      return source !== undefined && present.has(queueId({ prefix: queue.prefix, name: source })) ? source : undefined;
    };
    const dlqSources = new Set<string>();
    for (const { queue } of view.queues ?? []) {
      if (slicer.due()) await slicer.yield();
      const source = sourceOf(queue);
      if (source !== undefined) dlqSources.add(queueId({ prefix: queue.prefix, name: source }));
    }

    const fragments = new Map<string, Kept>();
    const list: Fragment[] = [];
    let rendered = 0;
    /** Reused queue after queue (finish() empties it). */
    const writer = new FragmentWriter(FAMILIES.length);
    writer.withProto = proto;
    for (const { queue, stats } of view.queues ?? []) {
      if (slicer.due()) await slicer.yield();
      // A queue discovery no longer lists (deleted, obliterated) leaves /metrics at once: its accounting is kept
      // (for the retention) in case it comes back, but nobody wants its series for a week.
      const id = queueId(queue);
      if (view.listed && !view.listed.has(id)) continue;
      const source = sourceOf(queue);
      const hasDlq = dlqSources.has(id);
      let kept = this.fragments.get(id);
      // The read-back hands an unchanged queue's stats out as the same object (events/accounting-cache.ts): then
      // nothing it is rendered from moved, and its fingerprint need not be built again (2 s of a 10,000-queue run).
      if (kept?.stats !== stats || kept.source !== source || kept.hasDlq !== hasDlq || kept.fragment.proto !== proto) {
        const fp = fingerprint(stats, source, hasDlq);
        const fr = kept?.fragment.fp === fp && kept.fragment.proto === proto ? kept.fragment : this.renderQueue(writer, queue, stats, source, hasDlq, fp);
        if (fr !== kept?.fragment) rendered += 1;
        kept = { stats, source, hasDlq, fragment: fr };
      }
      fragments.set(id, kept);
      list.push(kept.fragment);
      if (this.histograms === 'per-prefix' && source === undefined) {
        // Merged over the prefix's queues, changed or not: a handful of series, rendered every time below.
        if (!stats.counters.some((c) => c.value > 0) && stats.histograms.length === 0) continue;
        let kinds = perPrefix.get(queue.prefix);
        if (!kinds) perPrefix.set(queue.prefix, (kinds = new Map(HISTOGRAM_KINDS.map((k) => [k, EMPTY]))));
        for (const h of stats.histograms) kinds.set(h.histogram, merge(kinds.get(h.histogram), h));
      }
    }
    for (const [prefix, kinds] of perPrefix) {
      const w = new FragmentWriter(FAMILIES.length);
      w.withProto = proto;
      const labels = renderLabels([PREFIX_LABEL!], [prefix]);
      const pairs = labelPairs([PREFIX_LABEL!], [prefix]);
      for (const [kind, m] of kinds) writeHistogram(w, kind, labels, pairs, m);
      list.push(w.finish(''));
    }

    if (generation !== this.generation) return;
    this.fragments = fragments;
    this.lastRendered = rendered;
    await this.exposition.publish('events', new FragmentSet(FAMILIES, list), view.queues === undefined);
  }

  /** One queue's event series: counters, its dead-letter adds, the reader's health, its latency histograms. */
  private renderQueue(w: FragmentWriter, queue: QueueRef, stats: QueueEventStats, source: string | undefined, hasDlq: boolean, fp: string): Fragment {
    const values = [queue.prefix, queue.name];
    const q = renderLabels(QUEUE_LABELS, values);
    const pairs = labelPairs(QUEUE_LABELS, values);
    const withName = (jobName: string) => (jobName === '' ? q : `${q},${JOB_NAME}="${escapeLabel(jobName)}"`);
    const pairsWithName = (jobName: string): Pairs => (jobName === '' ? pairs : [...pairs, [JOB_NAME, jobName]]);
    for (const c of stats.counters) w.sample(COUNTER_AT[c.counter], COUNTERS[c.counter], withName(c.jobName), pairsWithName(c.jobName), c.value);
    // Every queue gets its counters from 0: rate() cannot see the first increment of a series born at 1.
    // (With job_name labels the names are not known in advance; those series start at their first event.)
    for (const kind of Object.keys(COUNTERS) as EventCounter[]) {
      if (!SPARSE_COUNTERS.has(kind) && !stats.counters.some((c) => c.counter === kind)) w.sample(COUNTER_AT[kind], COUNTERS[kind], q, pairs, 0);
    }
    if (source !== undefined) {
      const added = stats.counters.reduce((sum, c) => (c.counter === 'added' ? sum + c.value : sum), 0);
      const src = [queue.prefix, source];
      w.sample(DLQ_ADDED_AT, METRICS.dlqAdded, renderLabels(QUEUE_LABELS, src), labelPairs(QUEUE_LABELS, src), added);
    } else if (!hasDlq) {
      // The dead-letter queue appears with its first dead letter: without a 0 before it, a queue's first
      // dead letters never reach rate() and BullMQDeadLetterQueueGrowing stays silent.
      w.sample(DLQ_ADDED_AT, METRICS.dlqAdded, q, pairs, 0);
    }
    READER.forEach(({ def, value }, k) => {
      const v = value(stats.reader);
      if (!def.sparse || v > 0) w.sample(READER_AT + k, def, q, pairs, v);
    });
    // A dead-letter queue's jobs are parked, not run: its latency says nothing, its count is bullmq_dlq_added_total.
    if (source !== undefined || this.histograms !== 'per-queue') return w.finish(fp);

    // Histograms start from 0 too, for the same reason: the burst of slow waits that ends a backlog is
    // exactly the first observation of a wait series, and the wait-time SLO alerts must see it. Only for queues
    // that have seen a job at all: 30 zero samples per idle queue would make /metrics of a large, mostly idle
    // fleet tens of megabytes, and an idle queue's first job arrives (as `added`) before it can wait or finish.
    const seenAJob = stats.counters.some((c) => c.value > 0);
    const merged = new Map<string, { kind: EventHistogram; jobName: string; m: Merged }>();
    const kindsSeen = new Set<EventHistogram>();
    for (const h of stats.histograms) {
      const key = `${h.histogram}|${h.jobName}`;
      const e = merged.get(key);
      if (e) e.m = merge(e.m, h);
      else merged.set(key, { kind: h.histogram, jobName: h.jobName, m: asMerged(h) });
      kindsSeen.add(h.histogram);
    }
    if (seenAJob) {
      for (const kind of HISTOGRAM_KINDS) if (!kindsSeen.has(kind)) merged.set(`${kind}|`, { kind, jobName: '', m: EMPTY });
    }
    for (const { kind, jobName, m } of merged.values()) writeHistogram(w, kind, withName(jobName), pairsWithName(jobName), m);
    return w.finish(fp);
  }
}

/** The families of the event series, in body order. */
const FAMILIES: readonly MetricDef[] = [...Object.values(COUNTERS), METRICS.dlqAdded, ...READER.map((r) => r.def), ...Object.values(HISTOGRAMS)];
const COUNTER_AT = Object.fromEntries((Object.keys(COUNTERS) as EventCounter[]).map((c) => [c, FAMILIES.indexOf(COUNTERS[c])])) as Record<EventCounter, number>;
const DLQ_ADDED_AT = FAMILIES.indexOf(METRICS.dlqAdded);
const READER_AT = FAMILIES.indexOf(READER[0]!.def);
const HISTOGRAM_AT = Object.fromEntries(HISTOGRAM_KINDS.map((k) => [k, FAMILIES.indexOf(HISTOGRAMS[k])])) as Record<EventHistogram, number>;
const LE_BOUNDS = [...EXPOSED_BUCKETS_SECONDS];

function writeHistogram(w: FragmentWriter, kind: EventHistogram, labels: string, pairs: Pairs, m: Merged): void {
  w.histogram(HISTOGRAM_AT[kind], HISTOGRAMS[kind], labels, pairs, {
    bounds: LE_BOUNDS,
    le: LE,
    cumulative: LE.map((_, i) => m.buckets[EXPOSED_AT[i] ?? Number.POSITIVE_INFINITY] ?? m.count),
    sum: m.sum,
    count: m.count,
    native: m.native && { schema: NATIVE_SCHEMA, zeroThreshold: NATIVE_ZERO_THRESHOLD, zeroCount: m.zero, buckets: m.native },
  });
}

/**
 * What a queue's event series are rendered from, as a string: equal strings, equal fragments. A histogram is
 * named by its count, sum and whether its native buckets are complete: observations only add, so a bucket cannot
 * change without its count changing. Names are length-prefixed, so no job name can make two inputs look alike.
 */
function fingerprint(stats: QueueEventStats, source: string | undefined, hasDlq: boolean): string {
  let fp = `${source === undefined ? '-' : `${source.length}:${source}`}${hasDlq ? '+' : ''}`;
  for (const c of stats.counters) fp += `|${c.counter}${c.jobName.length}:${c.jobName}=${c.value}`;
  for (const h of stats.histograms) fp += `|${h.histogram}/${h.label}${h.jobName.length}:${h.jobName}=${h.count},${h.sumSeconds},${nativeComplete(h) ? 1 : 0}`;
  const r = stats.reader;
  return `${fp}|${r.read},${r.lost},${r.unmatched},${r.evicted},${r.lagSeconds}`;
}
