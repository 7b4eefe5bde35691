// Renders docs/metrics.md from the metric definitions, so the documentation cannot drift from the code.
import { EVENT_COUNTERS, EVENT_HISTOGRAMS, READER_COUNTERS } from '../events/accounting.js';
import { EVENT_BUCKETS_SECONDS, EXPOSED_BUCKETS_SECONDS } from '../events/buckets.js';

const EVENT_BUCKET_COUNT = EVENT_BUCKETS_SECONDS.length;
import { METRICS, type MetricDef } from './definitions.js';
import { STARTED_AT_ZERO } from './event-metrics.js';
import { DLQ_GAUGE_SERIES, QUEUE_GAUGE_SERIES } from './queue-metrics.js';

/** Series per queue in the default classic exposition (without --job-name-label), as rendered. */
export function seriesPerQueue(): {
  idle: number;
  completing: number;
  everyOutcome: number;
  dlqAddsToSource: number;
  deadLetterQueue: number;
  perHistogram: number;
} {
  // Counters from 0, bullmq_dlq_added_total, reader health (read, unmatched, evicted, lost, lag).
  const base = QUEUE_GAUGE_SERIES + EVENT_COUNTERS.length + 1 + READER_COUNTERS.length + 2;
  const perHistogram = EXPOSED_BUCKETS_SECONDS.length + 3; // finite buckets, +Inf, _sum, _count
  const every = Object.values(EVENT_HISTOGRAMS).reduce((n, labels) => n + labels.length, 0);
  return {
    idle: base,
    completing: base + STARTED_AT_ZERO.length * perHistogram,
    everyOutcome: base + every * perHistogram,
    dlqAddsToSource: DLQ_GAUGE_SERIES,
    // Its own gauges, counters and reader health; no histograms, and its adds are its source's dlq_added.
    deadLetterQueue: base - 1,
    perHistogram,
  };
}

export function renderMetricsDoc(defs: Record<string, MetricDef> = METRICS): string {
  const rows = Object.values(defs)
    .map((d) => `| \`${d.name}\` | ${d.type} | ${d.labels.map((l) => `\`${l}\``).join(', ') || '–'} | ${escape(d.help)} | ${escape(d.source)} |`)
    .join('\n');
  const n = seriesPerQueue();
  const EVENT_BUCKETS = EVENT_BUCKET_COUNT;
  const EXPOSED = EXPOSED_BUCKETS_SECONDS.length;
  const EXPOSED_LIST = EXPOSED_BUCKETS_SECONDS.join(', ');
  return `# Metrics

Generated from \`src/metrics/definitions.ts\` by \`npm run gen:docs\`; a test fails when this file drifts from the code.

Every queue metric carries \`prefix\` and \`queue\`. Label values come only from bounded sets (queue names found by
discovery, capped by \`--max-queues\`; fixed state and outcome names). No job ids, payloads, error messages or URLs.
Gauges are read from Redis once per collection (\`--collect-interval\`) and served from that snapshot, so any number
of scrapers cost Redis nothing extra, and every replica of the sidecar exports the same values.

| metric | type | labels | meaning | source |
| --- | --- | --- | --- | --- |
${rows}

## On PostgreSQL (\`--backend postgres\`)

The same metrics, names and labels, so dashboards, alerts, the status page, \`/api/queues\` and \`queuelens top\` work
unchanged. BullMQ's PostgreSQL backend has no key prefix: every queue lives in one schema (\`connection.schema\`,
\`bullmq\` by default), so **\`prefix\` is the schema** (\`--pg-schema\`), and \`queue\` the \`queue\` column.
\`bullmq_exporter_redis_up\` says whether PostgreSQL answers. The sources differ (docs/postgres.md §1-2): the job
counts are \`count(*)\` over the backend's partial indexes by \`state\` (prioritized = waiting with \`priority > 0\`),
paused is the \`meta\` row \`paused\`, an orphaned active job is \`state = 'active' AND locked_until_ms < now\`,
workers are the sessions named \`<queue>\` or \`<queue>:w:<name>\` in \`pg_stat_activity\` (BullMQ's
\`application_name\`), and the event counters and histograms come from the \`event\` table, read by the leader of
the schema and committed in queuelens's own schema (\`--pg-own-schema\`).

## Cardinality

Series per queue in the default exposition (classic histograms; without \`--job-name-label\`, which multiplies the
event counters and histograms by the job names seen, capped). The accounting keeps ${EVENT_BUCKETS} bucket bounds;
/metrics renders ${EXPOSED} of them (\`${EXPOSED_LIST}\` s and +Inf: exact cumulative counts, reaching 6 h and
holding the wait-time SLO thresholds), so one histogram series set costs ${n.perHistogram} series.

| queue | series |
| --- | --- |
| idle (no job seen yet; no histogram) | ${n.idle} |
| with traffic, jobs completing (first-take wait, completed processing and end-to-end histograms) | ${n.completing} |
| ... with a dead-letter queue (its depth and age, under the source queue) | +${n.dlqAddsToSource} |
| every outcome seen (retry waits, failed and retried attempts, failed jobs: each series appears with its first event) | ${n.everyOutcome} |
| a dead-letter queue itself (no latency histograms: its jobs are parked, not run) | ${n.deadLetterQueue} |

A queue discovery no longer lists (deleted, obliterated) leaves /metrics at the next collection; its accounting
stays in Redis for the retention, in case it comes back. \`bullmq_exporter_build_info\` names the version serving.
`;
}

function escape(s: string): string {
  return s.replace(/\|/g, '\\|');
}
