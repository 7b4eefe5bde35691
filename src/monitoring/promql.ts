// Small PromQL builders of the dashboard generator (the rules' own are in mixin/lib/promql.libsonnet). The one
// idea they carry: every sidecar replica exports the same persisted numbers, so series are first deduplicated
// with max over the replica (keeping every label but job/instance) and only then summed over other labels.
// Summing replicas would double every number.

/** `name{m1, m2}`; empty matchers are dropped. */
export function sel(name: string, ...matchers: Array<string | undefined>): string {
  const m = matchers.filter((x): x is string => x !== undefined && x !== '');
  return m.length > 0 ? `${name}{${m.join(', ')}}` : name;
}

/** Jobs ready to run now, per `by` (the labels naming a queue): waiting + prioritized (paused jobs stay in waiting in BullMQ v6). */
export function runnableJobs(by: string, ...matchers: Array<string | undefined>): string {
  return `sum by (${by}) (max by (${by}, state) (${sel('bullmq_queue_jobs', 'state=~"waiting|prioritized"', ...matchers)}))`;
}

/**
 * The dead-letter queues, as `{prefix, queue="<q>-dlq"}`: bullmq_dlq_jobs exists exactly for the queues the sidecar
 * counts as one (markDeadLetterQueues: `<q>-dlq` whose source `<q>` exists), labelled by the source, so the
 * dashboards use the sidecar's definition instead of matching names (as the rules do, in the mixin).
 */
export function deadLetterQueues(by: string): string {
  return `label_replace(max by (${by}) (bullmq_dlq_jobs), "queue", "$1-dlq", "queue", "(.+)")`;
}
