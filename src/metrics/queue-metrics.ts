// Renders a collection snapshot into the queue gauges and the exporter's self-metrics. Queue gauges are
// written as exposition text straight from the snapshot, once per collection: with 1,000 queues that is
// 15,000 series, and setting them one by one in prom-client (a label-set hash per series, rebuilt every
// collection) then rendering them cost ~45 ms of event loop and most of the heap churn (bench/collector.ts).
// Because the text is rebuilt from each snapshot, a vanished queue's series vanish with it and a failed
// collection shows no stale queue values. The few self-metrics stay in prom-client.
import { createRequire } from 'node:module';
import type { CollectionSnapshot, QueueState } from '../domain/queue-snapshot.js';
import { JOB_STATES, SKIP_REASONS } from '../domain/queue-snapshot.js';
import { Slicer } from '../util/slicer.js';
import { METRICS, type MetricDef } from './definitions.js';
import type { Exposition } from './exposition.js';
import { labelAfter, labelPairs, renderLabels, sameLabels } from './exposition-text.js';
import { FragmentSet, FragmentWriter, type Fragment, type Pairs } from './exposition-fragments.js';
import { queueId, type QueueRef } from '../domain/queue-ref.js';

/** One queue gauge: its definition and how to read it from a queue (undefined = no series for that queue). */
interface QueueGauge {
  def: MetricDef;
  value: (q: QueueState) => number | undefined;
  /** An age: it moves with the clock while nothing else about the queue does (rendered for all queues at once). */
  age?: true;
}

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };
const parkedInDlq = (q: QueueState) => JOB_STATES.reduce((sum, st) => (st === 'completed' ? sum : sum + q.jobs[st]), 0);

const QUEUE_GAUGES: QueueGauge[] = [
  // Only while paused (orphaned active jobs, rate limited: only while non-zero): see their help (the series budget,
  // docs/metrics.md).
  { def: METRICS.queuePaused, value: (q) => (q.paused ? 1 : undefined) },
  { def: METRICS.queueOldestWaitingAge, value: (q) => q.oldestWaitingAgeSeconds, age: true },
  { def: METRICS.queueDelayedOverdue, value: (q) => q.delayedOverdue },
  { def: METRICS.queueOldestActiveAge, value: (q) => q.oldestActiveAgeSeconds, age: true },
  { def: METRICS.queueOrphanedActive, value: (q) => q.orphanedActive || undefined },
  { def: METRICS.queueWorkers, value: (q) => q.workers },
  { def: METRICS.queueRateLimited, value: (q) => (q.rateLimited ? 1 : undefined) },
];

/** Dead-letter gauges are labelled with the source queue's name. */
const DLQ_GAUGES: QueueGauge[] = [
  { def: METRICS.dlqJobs, value: parkedInDlq },
  { def: METRICS.dlqOldestAge, value: (q) => q.oldestWaitingAgeSeconds, age: true },
];

// Label names come from the definitions: a queue's label set (rendered once per queue and shared by every gauge
// that has exactly those labels), and the one label bullmq_queue_jobs adds to it.
const QUEUE_LABELS = METRICS.queuePaused.labels;
sameLabels(
  [...QUEUE_GAUGES, ...DLQ_GAUGES].map((g) => g.def),
  QUEUE_LABELS,
);
const STATE_LABEL = labelAfter(METRICS.queueJobs, QUEUE_LABELS);

export class QueueMetrics {
  private readonly up;
  private readonly redisUp;
  private readonly duration;
  private readonly lastCollect;
  private readonly errors;
  private readonly queues;
  private readonly dropped;
  private readonly cycle;
  private readonly interval;
  private lastSeq = 0;
  private staleSeq = -1;
  /** Each exported queue's fragment, by queueId(), as last rendered, with the values it was rendered from. */
  private fragments = new Map<string, Kept>();
  /**
   * Queues whose fragment the last update rendered again (the others kept theirs): tests, the bench. The ages are
   * not in it: they are written for every queue at each update, into one fragment (renderAges).
   */
  lastRendered = 0;
  /** The snapshot the published fragments were rendered from (rendered again for a first protobuf scrape). */
  private last: CollectionSnapshot | undefined;

  constructor(private readonly exposition: Exposition) {
    const e = exposition;
    e.onProtobufWanted('collection', () => this.rerender());
    this.up = e.gauge(METRICS.exporterUp);
    this.redisUp = e.gauge(METRICS.exporterRedisUp);
    this.duration = e.gauge(METRICS.exporterCollectDuration);
    this.lastCollect = e.gauge(METRICS.exporterLastCollect);
    this.errors = e.counter(METRICS.exporterCollectErrors);
    this.queues = e.gauge(METRICS.exporterQueues);
    this.dropped = e.gauge(METRICS.exporterQueuesDropped);
    this.cycle = e.gauge(METRICS.exporterCycleDuration);
    this.interval = e.gauge(METRICS.exporterCollectInterval);
    e.gauge(METRICS.exporterBuildInfo).set({ version, nodejs_version: process.version }, 1);
    this.up.set(0);
    this.redisUp.set(0);
    this.errors.inc(0);
    void e.publish('collection', EMPTY);
  }

  /** After each whole cycle: how long it took and the interval now in force (sidecar/stretch.ts). */
  setCycle(cycleSeconds: number, intervalSeconds: number): void {
    this.cycle.set(cycleSeconds);
    this.interval.set(intervalSeconds);
    this.exposition.invalidate();
  }

  /**
   * A collection is hanging (Redis stalled without closing the connection): stop exporting the last values as if
   * they were current. The next finished collection replaces this.
   */
  markStale(): boolean {
    if (this.staleSeq === this.lastSeq) return false;
    this.staleSeq = this.lastSeq;
    this.queues.reset();
    this.up.set(0);
    void this.exposition.publish('collection', EMPTY, true);
    return true;
  }

  /**
   * Renders the queues whose values changed, in slices (see Slicer); the new values appear together once the
   * whole body is written.
   */
  async update(s: CollectionSnapshot): Promise<void> {
    if (s.seq === this.lastSeq) return;
    this.lastSeq = s.seq;
    const { set, fragments, rendered } = await renderQueueGauges(s.queues, this.fragments, new Slicer(), this.exposition.protobufWanted());
    // A newer collection, or markStale(), got there while this one rendered.
    if (this.lastSeq !== s.seq || this.staleSeq === s.seq) return;
    this.queues.reset();
    this.up.set(s.ok ? 1 : 0);
    this.redisUp.set(s.redisUp ? 1 : 0);
    this.duration.set(s.durationSeconds);
    if (s.lastSuccessAt > 0) this.lastCollect.set(s.lastSuccessAt / 1000);
    if (!s.ok) this.errors.inc();
    this.dropped.set({ reason: 'max_queues' }, s.queuesDropped);
    for (const reason of SKIP_REASONS) this.dropped.set({ reason }, s.queuesSkipped?.[reason] ?? 0);
    for (const [prefix, n] of Object.entries(s.queuesByPrefix)) this.queues.set({ prefix }, n);
    this.fragments = fragments;
    this.lastRendered = rendered;
    this.last = s;
    await this.exposition.publish('collection', set);
  }

  /** The last snapshot's fragments rendered again as protobufWanted() now says; its values are already set. */
  private async rerender(): Promise<void> {
    const s = this.last;
    // An update under way (or a stale mark) publishes instead.
    if (s === undefined || this.lastSeq !== s.seq || this.staleSeq === s.seq) return;
    const { set, fragments, rendered } = await renderQueueGauges(s.queues, this.fragments, new Slicer(), this.exposition.protobufWanted());
    if (this.lastSeq !== s.seq || this.staleSeq === s.seq) return;
    this.fragments = fragments;
    this.lastRendered = rendered;
    await this.exposition.publish('collection', set);
  }
}

/** The families of the queue gauges, in body order: the job counts, the queue gauges, the dead-letter gauges. */
const FAMILIES: readonly MetricDef[] = [METRICS.queueJobs, ...QUEUE_GAUGES.map((g) => g.def), ...DLQ_GAUGES.map((g) => g.def)];
const DLQ_AT = 1 + QUEUE_GAUGES.length;

/** The gauges that are not ages, queue and dead-letter ones: what a queue's own fragment is rendered from. */
const OWN_GAUGES = [...QUEUE_GAUGES, ...DLQ_GAUGES].filter((g) => !g.age);

/** A queue's fragment and the values it was rendered from: its dead-letter source, job counts and own gauges. */
interface Kept {
  fragment: Fragment;
  dlqOf: string | undefined;
  values: Array<number | undefined>;
}

/**
 * Whether `q` renders the fragment `kept` was rendered from, compared value by value (Object.is: exactly what was
 * written), with nothing built per queue: at every collection this runs for each queue of the fleet.
 */
function unchanged(kept: Kept, q: QueueState): boolean {
  if (kept.dlqOf !== q.dlqOf) return false;
  const v = kept.values;
  for (let k = 0; k < JOB_STATES.length; k += 1) if (!Object.is(v[k], q.jobs[JOB_STATES[k]!])) return false;
  for (let k = 0; k < OWN_GAUGES.length; k += 1) if (!Object.is(v[JOB_STATES.length + k], OWN_GAUGES[k]!.value(q))) return false;
  return true;
}

function valuesOf(q: QueueState): Array<number | undefined> {
  return [...JOB_STATES.map((st) => q.jobs[st]), ...OWN_GAUGES.map((g) => g.value(q))];
}

/**
 * A queue's own label set as text, built once per ref (discovery hands out the same refs collection after
 * collection): the ages are written for every queue at each collection. Kept flat: built by appending, a label set
 * is a tree of string pieces, several times the bytes of its text (10,000 of them are held). Never written to.
 */
const labelsByRef = new WeakMap<QueueRef, string>();

function queueLabels(ref: QueueRef): string {
  let out = labelsByRef.get(ref);
  if (out === undefined) {
    out = flat(renderLabels(QUEUE_LABELS, [ref.prefix, ref.name]));
    labelsByRef.set(ref, out);
  }
  return out;
}

/** `s` as one sequential string, exactly its characters (JSON round-trips every string, lone surrogates too). */
function flat(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
}

/**
 * A queue's own label set as pairs: only the protobuf is written from them (FragmentWriter.sample ignores them
 * without it), so they are built only for a writer that writes it, at the first protobuf render of the ref.
 */
const pairsByRef = new WeakMap<QueueRef, Pairs>();
const NO_PAIRS: Pairs = [];

function queuePairs(ref: QueueRef, w: FragmentWriter): Pairs {
  if (!w.withProto) return NO_PAIRS;
  let out = pairsByRef.get(ref);
  if (out === undefined) {
    out = labelPairs(QUEUE_LABELS, [ref.prefix, ref.name]);
    pairsByRef.set(ref, out);
  }
  return out;
}

/** The state label of bullmq_queue_jobs, as text after a queue's labels and as a label pair, per state. */
const STATE_TEXT = JOB_STATES.map((st) => `,${STATE_LABEL}="${st}"`);
const STATE_PAIRS = JOB_STATES.map((st) => [STATE_LABEL, st] as const);

/** A queue's gauges but its ages. `w`: the writer of the whole pass, reused queue after queue (finish() empties it). */
function renderQueue(q: QueueState, w: FragmentWriter): Fragment {
  const labels = queueLabels(q.ref);
  const pairs = queuePairs(q.ref, w);
  // One array for the seven states, its last pair swapped per state (the writer keeps no reference to it).
  const withState: Array<readonly [string, string]> = [...pairs, STATE_PAIRS[0]!];
  JOB_STATES.forEach((st, k) => {
    withState[pairs.length] = STATE_PAIRS[k]!;
    w.sample(0, METRICS.queueJobs, labels + STATE_TEXT[k]!, withState, q.jobs[st]);
  });
  writeGauges(w, q, false, labels, pairs);
  return w.finish('');
}

/** The gauges of `q` that are ages (`ages`), or those that are not; `labels`/`pairs`: its own label set. */
function writeGauges(w: FragmentWriter, q: QueueState, ages: boolean, labels: string, pairs: Pairs): void {
  QUEUE_GAUGES.forEach((g, k) => {
    if ((g.age ?? false) !== ages) return;
    const v = g.value(q);
    if (v !== undefined) w.sample(1 + k, g.def, labels, pairs, v);
  });
  if (q.dlqOf !== undefined) {
    const source = [q.ref.prefix, q.dlqOf];
    const l = renderLabels(QUEUE_LABELS, source);
    const p = labelPairs(QUEUE_LABELS, source);
    DLQ_GAUGES.forEach((g, k) => {
      if ((g.age ?? false) === ages) w.sample(DLQ_AT + k, g.def, l, p, g.value(q)!);
    });
  }
}

/**
 * Every queue's ages, in snapshot order, as one fragment after the queues' own: an age moves with the clock, so at
 * each collection most queues with a backlog have a new one while nothing else about them changed. Written whole
 * each time (a few samples per queue, one store), it leaves every other gauge of such a queue in its kept fragment.
 */
async function renderAges(queues: readonly QueueState[], slicer: Slicer, proto: boolean): Promise<Fragment> {
  const w = new FragmentWriter(FAMILIES.length);
  w.withProto = proto;
  // Family by family, so that the writer's bytes are in body order already (finish() copies them in one piece).
  for (const [k, g] of QUEUE_GAUGES.entries()) {
    if (!g.age) continue;
    for (const q of queues) {
      if (slicer.due()) await slicer.yield();
      const v = g.value(q);
      if (v === undefined) continue;
      w.sample(1 + k, g.def, queueLabels(q.ref), queuePairs(q.ref, w), v);
    }
  }
  for (const [k, g] of DLQ_GAUGES.entries()) {
    if (!g.age) continue;
    for (const q of queues) {
      if (slicer.due()) await slicer.yield();
      if (q.dlqOf === undefined) continue;
      const source = [q.ref.prefix, q.dlqOf];
      w.sample(DLQ_AT + k, g.def, renderLabels(QUEUE_LABELS, source), labelPairs(QUEUE_LABELS, source), g.value(q)!);
    }
  }
  return w.finish('');
}

/**
 * Every queue's gauges as fragments, in snapshot order: a queue whose values did not change since `kept` was
 * rendered keeps its fragment (most queues, once collection is driven by change); the others are rendered again.
 */
async function renderQueueGauges(
  queues: readonly QueueState[],
  kept: ReadonlyMap<string, Kept>,
  slicer: Slicer,
  proto: boolean,
): Promise<{ set: FragmentSet; fragments: Map<string, Kept>; rendered: number }> {
  const fragments = new Map<string, Kept>();
  const list: Fragment[] = [];
  let rendered = 0;
  const w = new FragmentWriter(FAMILIES.length);
  w.withProto = proto;
  for (const q of queues) {
    if (slicer.due()) await slicer.yield();
    const key = queueId(q.ref);
    let k = kept.get(key);
    // With or without its protobuf as wanted now: a queue keeps its fragment only if it has the same formats.
    if (k === undefined || k.fragment.proto !== proto || !unchanged(k, q)) {
      k = { fragment: renderQueue(q, w), dlqOf: q.dlqOf, values: valuesOf(q) };
      rendered += 1;
    }
    fragments.set(key, k);
    list.push(k.fragment);
  }
  // After every queue's own fragment: within each age family its samples are in queue order, as if each queue's.
  list.push(await renderAges(queues, slicer, proto));
  return { set: new FragmentSet(FAMILIES, list, true), fragments, rendered };
}

/** Series one queue's gauges cost (docs/metrics.md, cardinality), and what its dead-letter queue adds to it. */
export const QUEUE_GAUGE_SERIES = JOB_STATES.length + QUEUE_GAUGES.filter((g) => !g.def.sparse).length;
export const DLQ_GAUGE_SERIES = DLQ_GAUGES.length;

/** A collection without queues: every family's header and no series. */
const EMPTY = FragmentSet.empty(FAMILIES, true);
