// Renders docs/metrics.md from the metric definitions, so the documentation cannot drift from the code.
import { EVENT_BUCKETS_SECONDS, EXPOSED_BUCKETS_SECONDS, NATIVE_SCHEMA } from '../events/buckets.js';
import { METRICS, type MetricDef } from './definitions.js';
import { EVENT_SERIES_PER_QUEUE, HISTOGRAM_KINDS } from './event-metrics.js';

const EVENT_BUCKET_COUNT = EVENT_BUCKETS_SECONDS.length;
import { DLQ_GAUGE_SERIES, QUEUE_GAUGE_SERIES } from './queue-metrics.js';

/** Series of one queue, as Prometheus stores them, in one exposition mode (without --job-name-label). */
export interface QueueSeries {
  /** Exported, but no job seen yet: no histogram. */
  idle: number;
  /** Jobs seen, of any outcome (first takes, retries, completions, failures, stalls). */
  withTraffic: number;
}

/** Series per queue in each mode (docs/metrics.md, cardinality); test/series-budget.test.ts measures them. */
export function seriesPerQueue(): {
  classic: QueueSeries;
  native: QueueSeries;
  /** --histograms per-prefix or off: the same in both formats. */
  aggregate: QueueSeries;
  /** One histogram per prefix under --histograms per-prefix (the prefix carries it, once one of its queues saw a job). */
  perPrefix: { classic: number; native: number };
  dlqAddsToSource: number;
  deadLetterQueue: number;
  perHistogram: number;
} {
  const base = QUEUE_GAUGE_SERIES + EVENT_SERIES_PER_QUEUE;
  const perHistogram = EXPOSED_BUCKETS_SECONDS.length + 3; // finite buckets, +Inf, _sum, _count
  const kinds = HISTOGRAM_KINDS.length;
  return {
    classic: { idle: base, withTraffic: base + kinds * perHistogram },
    // A native histogram is one series, whatever its buckets.
    native: { idle: base, withTraffic: base + kinds },
    aggregate: { idle: base, withTraffic: base },
    perPrefix: { classic: kinds * perHistogram, native: kinds },
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
  const sparse = Object.values(defs)
    .filter((d) => d.sparse)
    .map((d) => `\`${d.name}\``)
    .join(', ');
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

Series per queue, as Prometheus stores them, in each mode (without \`--job-name-label\`, which multiplies the event
counters and histograms by the job names seen, capped). The latency histograms are \`bullmq_job_wait_seconds\`,
\`bullmq_job_processing_seconds\` and \`bullmq_job_e2e_seconds\`, one series set each per queue: attempts
(first, retry) and outcomes (completed, failed, retried) are kept apart in the accounting (the status board reads
them) but summed on /metrics, because no dashboard or alert reads a latency by attempt or outcome; the job
counters say how many of each there were.

- **classic** (the Prometheus text format and OpenMetrics): the accounting keeps ${EVENT_BUCKETS} bucket bounds;
  /metrics renders ${EXPOSED} of them (\`${EXPOSED_LIST}\` s and +Inf: exact cumulative counts, reaching 6 h and
  holding the wait-time SLO thresholds), so one histogram costs ${n.perHistogram} series.
- **native**: when Prometheus negotiates the protobuf exposition (it does with \`--enable-feature=native-histograms\`),
  each histogram is one native histogram (schema ${NATIVE_SCHEMA}: buckets 19% wide, exact counts kept by the accounting
  from 1 ms to beyond 6 h). The protobuf carries the classic buckets too, for a Prometheus that negotiates protobuf
  but keeps classic histograms (\`scrape_classic_histograms\`); one that ingests native histograms ignores them.
  A series observed partly before the accounting kept native buckets (an upgrade) is served classic-only until
  its accounting is retired or reset.
- **per-prefix** / **off** (\`--histograms\`): no histogram per queue; per prefix one set (${n.perPrefix.classic} series
  classic, ${n.perPrefix.native} native) without the \`queue\` (and \`job_name\`) label, or none. Queries that sum by queue keep working and
  read the prefix; the bundled wait-time SLO alerts then page per prefix (without a \`queue\` label).

| queue | classic | native | per-prefix or off |
| --- | --- | --- | --- |
| idle (exported, no job seen yet) | ${n.classic.idle} | ${n.native.idle} | ${n.aggregate.idle} |
| with traffic (any outcomes: first takes, retries, completions, failures, stalls) | ${n.classic.withTraffic} | ${n.native.withTraffic} | ${n.aggregate.withTraffic} |
| ... with a dead-letter queue (its depth and age, under the source queue) | +${n.dlqAddsToSource} | +${n.dlqAddsToSource} | +${n.dlqAddsToSource} |
| with traffic and a dead-letter queue, in all | ${n.classic.withTraffic + n.dlqAddsToSource} | ${n.native.withTraffic + n.dlqAddsToSource} | ${n.aggregate.withTraffic + n.dlqAddsToSource} |
| a dead-letter queue itself (no latency histograms: its jobs are parked, not run) | ${n.deadLetterQueue} | ${n.deadLetterQueue} | ${n.deadLetterQueue} |

Series that are 0 for almost every queue and that no alert reads from 0 appear with their first non-zero value
instead (not counted above): ${sparse}.
test/series-budget.test.ts measures every column against a real sidecar's /metrics.

A queue discovery no longer lists (deleted, obliterated) leaves /metrics at the next collection; its accounting
stays in Redis for the retention, in case it comes back. \`bullmq_exporter_build_info\` names the version serving.
`;
}

function escape(s: string): string {
  return s.replace(/\|/g, '\\|');
}
