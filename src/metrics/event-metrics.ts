// Renders the persisted event accounting (read back from Redis at collection time, the same on every
// replica) into the job counters, latency histograms and reader-health metrics. Like the queue gauges, the
// series are written as exposition text once per collection and replaced wholesale; when the read-back failed
// they are absent rather than stale. The series budget per queue is in docs/metrics.md (cardinality).
import { dlqSource } from '../domain/queue-snapshot.js';
import { EVENT_BUCKETS_SECONDS, EXPOSED_BUCKETS_SECONDS } from '../events/buckets.js';
import type { EventCounter, EventHistogram } from '../events/accounting.js';
import type { QueueEventAccounting } from '../events/read-back.js';
import { Slicer } from '../util/slicer.js';
import { queueId } from '../domain/queue-ref.js';
import { METRICS, type MetricDef } from './definitions.js';
import type { Exposition } from './exposition.js';
import { escapeLabel, header, labelAfter, num, renderLabels, sameLabels } from './exposition-text.js';

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
const HISTOGRAMS: Record<EventHistogram, MetricDef> = { wait: METRICS.jobWait, processing: METRICS.jobProcessing, e2e: METRICS.jobE2e };
// Label names come from the definitions: a queue's set (rendered once per queue), the optional job name the
// counters and histograms add to it, and the one label each histogram adds after that (attempt, outcome).
const QUEUE_LABELS = METRICS.exporterEventsRead.labels;
type ReaderStats = QueueEventAccounting['stats']['reader'];
const READER: ReadonlyArray<{ def: MetricDef; value: (r: ReaderStats) => number }> = [
  { def: METRICS.exporterEventsRead, value: (r) => r.read },
  { def: METRICS.exporterEventsLost, value: (r) => r.lost },
  { def: METRICS.exporterEventsUnmatched, value: (r) => r.unmatched },
  { def: METRICS.exporterEventsEvicted, value: (r) => r.evicted },
  { def: METRICS.exporterEventsLag, value: (r) => r.lagSeconds },
];
sameLabels([...READER.map((r) => r.def), METRICS.dlqAdded], QUEUE_LABELS);
const JOB_NAME = labelAfter(METRICS.jobsAdded, QUEUE_LABELS);
const NAMED_LABELS = [...QUEUE_LABELS, JOB_NAME];
sameLabels(Object.values(COUNTERS), NAMED_LABELS);
const HISTOGRAM_LABEL = Object.fromEntries(Object.entries(HISTOGRAMS).map(([kind, def]) => [kind, labelAfter(def, NAMED_LABELS)])) as Record<
  EventHistogram,
  string
>;
const LE = [...EXPOSED_BUCKETS_SECONDS.map((b) => `le="${b}"`), 'le="+Inf"'];
/** Where each exposed bound sits among the stored ones (the +Inf bucket is `count`). */
const EXPOSED_AT = EXPOSED_BUCKETS_SECONDS.map((b) => {
  const i = EVENT_BUCKETS_SECONDS.indexOf(b);
  if (i < 0) throw new Error(`exposed bucket ${b} is not a stored bound`);
  return i;
});
/**
 * The series started at 0 once a queue has seen a job (see below): first takes and completions, which every
 * working queue has. Failures, retries and retry waits start at their first event: zero histograms for outcomes
 * that never happen were most of a large fleet's series.
 */
export const STARTED_AT_ZERO: ReadonlyArray<[EventHistogram, string]> = [
  ['wait', 'first'],
  ['processing', 'completed'],
  ['e2e', 'completed'],
];

export class EventMetrics {
  private readonly leader;
  private isLeader = false;
  private generation = 0;

  constructor(private readonly exposition: Exposition) {
    this.leader = exposition.gauge(METRICS.exporterLeader);
    this.leader.set(0);
    void this.update({ queues: undefined, leader: false });
  }

  /** Set at every render too: leadership can lapse between collections (a renewal hung on a stalled link). */
  setLeader(leader: boolean): void {
    if (leader === this.isLeader) return;
    this.isLeader = leader;
    this.leader.set(leader ? 1 : 0);
    this.exposition.invalidate();
  }

  /**
   * Renders in slices (see Slicer); the new text replaces the old once complete, unless a later update started
   * meanwhile. Without queues it completes synchronously.
   */
  async update(view: EventsView): Promise<void> {
    const generation = ++this.generation;
    const slicer = new Slicer();
    this.setLeader(view.leader);
    const lines = new Map<MetricDef, string[]>();
    const out = (def: MetricDef, line: string) => {
      const l = lines.get(def);
      if (l) l.push(line);
      else lines.set(def, [line]);
    };

    // A dead-letter queue is `<q>-dlq` whose source `<q>` exists (markDeadLetterQueues); sources whose dead-letter
    // queue exists are in dlqSources, the others get bullmq_dlq_added_total 0 (see below).
    const present = new Set((view.queues ?? []).map(({ queue }) => `${queue.prefix}:${queue.name}`));
    const sourceOf = (queue: { prefix: string; name: string }): string | undefined => {
      const source = dlqSource(queue.name);
      return source !== undefined && present.has(`${queue.prefix}:${source}`) ? source : undefined;
    };
    const dlqSources = new Set<string>();
    for (const { queue } of view.queues ?? []) {
      const source = sourceOf(queue);
      if (source !== undefined) dlqSources.add(`${queue.prefix}:${source}`);
    }

    for (const { queue, stats } of view.queues ?? []) {
      if (slicer.due()) await slicer.yield();
      // A queue discovery no longer lists (deleted, obliterated) leaves /metrics at once: its accounting is kept
      // (for the retention) in case it comes back, but nobody wants its series for a week.
      if (view.listed && !view.listed.has(queueId(queue))) continue;
      const q = renderLabels(QUEUE_LABELS, [queue.prefix, queue.name]);
      const withName = (jobName: string) => (jobName === '' ? q : `${q},${JOB_NAME}="${escapeLabel(jobName)}"`);
      for (const c of stats.counters) out(COUNTERS[c.counter], `${COUNTERS[c.counter].name}{${withName(c.jobName)}} ${num(c.value)}\n`);
      // Every queue gets every counter from 0: rate() cannot see the first increment of a series born at 1.
      // (With job_name labels the names are not known in advance; those series start at their first event.)
      for (const kind of Object.keys(COUNTERS) as EventCounter[]) {
        if (!stats.counters.some((c) => c.counter === kind)) out(COUNTERS[kind], `${COUNTERS[kind].name}{${q}} 0\n`);
      }
      const source = sourceOf(queue);
      if (source !== undefined) {
        const added = stats.counters.reduce((sum, c) => (c.counter === 'added' ? sum + c.value : sum), 0);
        out(METRICS.dlqAdded, `${METRICS.dlqAdded.name}{${renderLabels(QUEUE_LABELS, [queue.prefix, source])}} ${num(added)}\n`);
      } else if (!dlqSources.has(`${queue.prefix}:${queue.name}`)) {
        // The dead-letter queue appears with its first dead letter: without a 0 before it, a queue's first
        // dead letters never reach rate() and BullMQDeadLetterQueueGrowing stays silent.
        out(METRICS.dlqAdded, `${METRICS.dlqAdded.name}{${q}} 0\n`);
      }
      /** `buckets` cumulative without +Inf (shorter means the rest equal `count`). */
      const histogram = (kind: EventHistogram, label: string, jobName: string, buckets: readonly number[], count: number, sumSeconds: number) => {
        const def = HISTOGRAMS[kind];
        const l = `${withName(jobName)},${HISTOGRAM_LABEL[kind]}="${label}"`;
        LE.forEach((le, i) => out(def, `${def.name}_bucket{${l},${le}} ${num(buckets[EXPOSED_AT[i] ?? Number.POSITIVE_INFINITY] ?? count)}\n`));
        out(def, `${def.name}_sum{${l}} ${num(sumSeconds)}\n${def.name}_count{${l}} ${num(count)}\n`);
      };
      // A dead-letter queue's jobs are parked, not run: its latency says nothing, its count is bullmq_dlq_added_total.
      if (source !== undefined) {
        reader(stats, q);
        continue;
      }
      for (const h of stats.histograms) histogram(h.histogram, h.label, h.jobName, h.buckets, h.count, h.sumSeconds);
      // Histograms start from 0 too, for the same reason: the burst of slow waits that ends a backlog is
      // exactly the first observation of a wait series, and the wait-time SLO alerts must see it. Only for queues
      // that have seen a job at all: 168 zero samples per idle queue would make /metrics of a large, mostly idle
      // fleet tens of megabytes, and an idle queue's first job arrives (as `added`) before it can wait or finish.
      const seenAJob = stats.counters.some((c) => c.value > 0);
      for (const [kind, value] of seenAJob ? STARTED_AT_ZERO : []) {
        if (!stats.histograms.some((h) => h.histogram === kind && h.label === value)) histogram(kind, value, '', [], 0, 0);
      }
      reader(stats, q);
    }
    function reader(stats: QueueEventAccounting['stats'], q: string): void {
      for (const { def, value } of READER) out(def, `${def.name}{${q}} ${num(value(stats.reader))}\n`);
    }

    if (generation !== this.generation) return;
    const text = (openMetrics: boolean) => [...lines].map(([def, l]) => header(def, openMetrics) + l.join('')).join('');
    this.exposition.setEventText(text(false), text(true));
  }
}
