// Small PromQL builders shared by the rule and dashboard generators. The one idea they carry: every sidecar
// replica exports the same persisted numbers, so series are first deduplicated with max over the replica
// (keeping every label but job/instance) and only then summed over other labels. Summing replicas would
// double every number.

/** `name{m1, m2}`; empty matchers are dropped. */
export function sel(name: string, ...matchers: Array<string | undefined>): string {
  const m = matchers.filter((x): x is string => x !== undefined && x !== '');
  return m.length > 0 ? `${name}{${m.join(', ')}}` : name;
}

/** A regex alternation matching exactly these label values, quoted for a PromQL string. */
export function anyOf(values: readonly string[]): string {
  return values.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\\/g, '\\\\').replace(/"/g, '\\"')).join('|');
}

/**
 * Labels a per-queue series may carry besides the replica's job/instance. Grouping by a label a series does not
 * have is harmless, so the optional job_name is listed too: that keeps per-name series apart during deduplication.
 */
const SERIES_LABELS = ['prefix', 'queue', 'job_name'];

/** Per-queue rate of a counter, deduplicated over replicas, summed over job names (and `extra` labels). */
export function queueRate(counter: string, window: string, opts: { matchers?: string[]; keep?: string[]; extra?: string[] } = {}): string {
  const keep = ['prefix', 'queue', ...(opts.keep ?? [])];
  const dedup = [...SERIES_LABELS, ...(opts.keep ?? []), ...(opts.extra ?? [])];
  return `sum by (${keep.join(', ')}) (max by (${dedup.join(', ')}) (rate(${sel(counter, ...(opts.matchers ?? []))}[${window}])))`;
}

/** A per-queue gauge deduplicated over replicas. */
export function queueGauge(gauge: string, ...matchers: Array<string | undefined>): string {
  return `max by (prefix, queue) (${sel(gauge, ...matchers)})`;
}

/** Jobs ready to run now: waiting + prioritized (paused jobs stay in waiting in BullMQ v6). */
export function runnableJobs(...matchers: Array<string | undefined>): string {
  return `sum by (prefix, queue) (max by (prefix, queue, state) (${sel('bullmq_queue_jobs', 'state=~"waiting|prioritized"', ...matchers)}))`;
}

/**
 * The dead-letter queues, as `{prefix, queue="<q>-dlq"}`: bullmq_dlq_jobs exists exactly for the queues the sidecar
 * counts as one (markDeadLetterQueues: `<q>-dlq` whose source `<q>` exists), labelled by the source, so the
 * rules use the sidecar's definition instead of matching names.
 */
export function deadLetterQueues(): string {
  return `label_replace(max by (prefix, queue) (bullmq_dlq_jobs), "queue", "$1-dlq", "queue", "(.+)")`;
}

/**
 * Matches a bucket bound whatever way the server spells it: Prometheus 3 normalises le="30" to le="30.0" at
 * ingestion, Prometheus 2 keeps what the exporter wrote.
 */
export function leMatcher(seconds: number): string {
  const text = String(seconds);
  return text.includes('.') || text.includes('e') ? `le=~"${text.replace(/\./g, '\\\\.')}"` : `le=~"${text}(\\\\.0)?"`;
}
