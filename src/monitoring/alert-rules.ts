// Builds the Prometheus recording and alerting rules from MonitoringSettings. Pure: the generator writes the
// result to alerts/queuelens.rules.yml, and tests build rules with short test windows from the same code.
import { stringify } from 'yaml';
import { anyOf, leMatcher, queueGauge, queueRate, runnableJobs, sel } from './promql.js';
import { durationSeconds, thresholdsFor, type Duration, type MonitoringSettings, type QueueThresholds } from './settings.js';

export interface RecordingRule {
  record: string;
  expr: string;
  labels?: Record<string, string>;
}

export interface AlertRule {
  alert: string;
  expr: string;
  for?: Duration;
  labels: Record<string, string>;
  annotations: { summary: string; description: string; runbook_url: string; dashboard_url: string };
}

export interface RuleGroup {
  name: string;
  rules: Array<RecordingRule | AlertRule>;
}

export const OVERVIEW_DASHBOARD = { uid: 'queuelens-overview', slug: 'queuelens-overview' };
export const QUEUE_DASHBOARD = { uid: 'queuelens-queue', slug: 'queuelens-queue' };

/** Counters whose per-queue rates the rules record, by recorded base name. */
const COUNTERS = {
  bullmq_jobs_added: 'bullmq_jobs_added_total',
  bullmq_jobs_completed: 'bullmq_jobs_completed_total',
  bullmq_jobs_failed: 'bullmq_jobs_failed_total',
  bullmq_jobs_retried: 'bullmq_jobs_retried_total',
  bullmq_jobs_stalled: 'bullmq_jobs_stalled_total',
  bullmq_jobs_deduplicated: 'bullmq_jobs_deduplicated_total',
  bullmq_dlq_added: 'bullmq_dlq_added_total',
  bullmq_exporter_events_lost: 'bullmq_exporter_events_lost_total',
  bullmq_exporter_events_read: 'bullmq_exporter_events_read_total',
  bullmq_exporter_events_unmatched: 'bullmq_exporter_events_unmatched_total',
} as const;
type CounterBase = keyof typeof COUNTERS | 'bullmq_jobs_finished';

/** Histograms whose per-queue bucket, count and sum rates the rules record for the dashboards. */
export const HISTOGRAMS = {
  bullmq_job_wait_seconds: 'attempt',
  bullmq_job_processing_seconds: 'outcome',
  bullmq_job_e2e_seconds: 'outcome',
} as const;

/** Name of a recorded per-queue counter rate. */
export const rateRecord = (base: CounterBase, window: Duration): string => `prefix_queue:${base}:rate${window}`;
/** Name of a recorded per-queue histogram rate: part is bucket (kept by le), count or sum. */
export const histogramRecord = (histogram: keyof typeof HISTOGRAMS, part: 'bucket' | 'count' | 'sum', window: Duration): string =>
  part === 'bucket' ? `prefix_queue_le:${histogram}_bucket:rate${window}` : `prefix_queue:${histogram}_${part}:rate${window}`;
/** Name of the recorded share of jobs that waited longer than the SLO threshold. */
export const sloErrorRecord = (window: Duration): string => `prefix_queue:bullmq_job_wait_seconds:slo_error_ratio_rate${window}`;

interface Variant<T> {
  /** Queue matchers of this variant, comma-separated ('' = every queue). */
  matcher: string;
  t: T;
  /**
   * Set when the alert has overrides: `default` or the overriding queues. Rules of one name need distinct labels
   * (promtool rejects duplicates), and on-call sees which thresholds fired.
   */
  labels: Record<string, string>;
}

/**
 * One rule per distinct threshold set: the defaults for every queue without a differing override (excluded
 * by name), then one rule per group of queues that share an override. So an override touches only its queues.
 * settings.ignoredQueues (a PromQL regex) never reach the default rule.
 */
function variants<K extends keyof QueueThresholds>(s: MonitoringSettings, key: K): Array<Variant<QueueThresholds[K]>> {
  const base = JSON.stringify(s.defaults[key]);
  const groups = new Map<string, { t: QueueThresholds[K]; queues: string[] }>();
  for (const queue of Object.keys(s.overrides).sort()) {
    const t = thresholdsFor(s, queue)[key];
    const k = JSON.stringify(t);
    if (k === base) continue;
    const g = groups.get(k) ?? { t, queues: [] };
    g.queues.push(queue);
    groups.set(k, g);
  }
  const special = [...groups.values()].flatMap((g) => g.queues);
  const ignored = s.ignoredQueues ? `queue!~"${s.ignoredQueues}", ` : '';
  if (special.length === 0) return [{ matcher: ignored.slice(0, -2), t: s.defaults[key], labels: {} }];
  return [
    { matcher: `${ignored}queue!~"${anyOf(special)}"`, t: s.defaults[key], labels: { thresholds: 'default' } },
    ...[...groups.values()].map((g) => ({ matcher: `queue=~"${anyOf(g.queues)}"`, t: g.t, labels: { thresholds: g.queues.join(',') } })),
  ];
}

const Q = '{{ $labels.prefix }}:{{ $labels.queue }}';

function humanSeconds(sec: number): string {
  if (sec % 86_400 === 0) return `${sec / 86_400}d`;
  if (sec % 3600 === 0) return `${sec / 3600}h`;
  if (sec % 60 === 0) return `${sec / 60}m`;
  return `${sec}s`;
}

function percent(ratio: number): string {
  return `${Number((ratio * 100).toPrecision(6))}%`;
}

export function buildRuleGroups(s: MonitoringSettings): RuleGroup[] {
  const links = (alert: string, perQueue: boolean): { runbook_url: string; dashboard_url: string } => ({
    runbook_url: `${s.links.runbookBaseUrl}/${alert}.md`,
    dashboard_url: perQueue
      ? `${s.links.grafanaUrl}/d/${QUEUE_DASHBOARD.uid}/${QUEUE_DASHBOARD.slug}?var-prefix={{ $labels.prefix | urlquery }}&var-queue={{ $labels.queue | urlquery }}`
      : `${s.links.grafanaUrl}/d/${OVERVIEW_DASHBOARD.uid}/${OVERVIEW_DASHBOARD.slug}`,
  });
  const severity = (alert: string): string => {
    const sev = s.severities[alert];
    if (!sev) throw new Error(`settings.severities has no entry for ${alert}`);
    return sev;
  };
  const alert = (
    name: string,
    expr: string,
    forDuration: Duration,
    summary: string,
    description: string,
    opts: { perQueue?: boolean; severity?: string; labels?: Record<string, string> } = {},
  ): AlertRule => ({
    alert: name,
    expr,
    ...(durationSeconds(forDuration) > 0 ? { for: forDuration } : {}),
    labels: { severity: opts.severity ?? severity(name), ...opts.labels },
    annotations: { summary, description, ...links(name, opts.perQueue ?? true) },
  });

  // ---- which counter rates the alerts need, per window ----
  const needed = new Map<CounterBase, Set<Duration>>();
  const need = (base: CounterBase, w: Duration): string => {
    const set = needed.get(base) ?? new Set<Duration>();
    set.add(w);
    needed.set(base, set);
    if (base === 'bullmq_jobs_finished') {
      need('bullmq_jobs_completed', w);
      need('bullmq_jobs_failed', w);
    }
    return rateRecord(base, w);
  };
  for (const base of Object.keys(COUNTERS) as Array<keyof typeof COUNTERS>) need(base, s.dashboardWindow);
  need('bullmq_jobs_finished', s.dashboardWindow);

  const job = `job="${s.exporterJob}"`;
  const queueAlerts: AlertRule[] = [];
  /** Adds one alert per threshold variant; build returns expr, summary and description for a queue matcher. */
  const perQueue = <K extends Exclude<keyof QueueThresholds, 'waitSlo'>>(
    name: string,
    key: K,
    build: (m: string, t: QueueThresholds[K]) => [expr: string, summary: string, description: string],
  ): void => {
    for (const { matcher, t, labels } of variants(s, key)) {
      const [expr, summary, description] = build(matcher, t);
      queueAlerts.push(alert(name, expr, t.for, summary, description, { labels }));
    }
  };

  perQueue('BullMQNoWorkers', 'noWorkers', (m, t) => [
    `(
  ${runnableJobs(m)}
  + ${queueGauge('bullmq_queue_delayed_overdue_jobs', m)}
) > 0
and on (prefix, queue)
(
    ${queueGauge('bullmq_queue_workers', m)} == 0
  or
    (
      ${queueGauge('bullmq_queue_jobs', 'state="active"', m)} == 0
      and on (prefix, queue)
      ${sel(need('bullmq_jobs_finished', t.window), m)} == 0
    )
)
unless on (prefix, queue)
${queueGauge('bullmq_queue_paused', m)} == 1`,
    `No worker consumes queue ${Q}`,
    `{{ $value }} jobs of queue ${Q} are ready to run (waiting, prioritized or overdue delayed), and no worker is connected or none finished a job in the last ${t.window}.`,
  ]);

  perQueue('BullMQOldestJobTooOld', 'oldestJob', (m, t) => [
    `${queueGauge('bullmq_queue_oldest_waiting_age_seconds', m)} > ${t.maxAgeSeconds}`,
    `Jobs of queue ${Q} wait too long`,
    `The next job of queue ${Q} has been ready to run for {{ $value | humanizeDuration }} (threshold ${humanSeconds(t.maxAgeSeconds)}).`,
  ]);

  perQueue('BullMQBacklogGrowing', 'backlog', (m, t) => {
    const added = sel(need('bullmq_jobs_added', t.window), m);
    const finished = sel(need('bullmq_jobs_finished', t.window), m);
    return [
      `(
  ${added}
  - (${finished} or ${added} * 0)
) * 60 > 0
and on (prefix, queue)
${runnableJobs(m)} > ${t.minJobs}`,
      `Backlog of queue ${Q} keeps growing`,
      `Queue ${Q} takes in {{ $value | humanize }} more jobs per minute than it finishes (over ${t.window}), with more than ${t.minJobs} jobs waiting.`,
    ];
  });

  perQueue('BullMQHighFailureRate', 'failureRate', (m, t) => {
    const failed = sel(need('bullmq_jobs_failed', t.window), m);
    const finished = sel(need('bullmq_jobs_finished', t.window), m);
    return [
      `${failed} / ${finished} > ${t.maxRatio}
and on (prefix, queue)
${finished} * ${durationSeconds(t.window)} >= ${t.minFinished}`,
      `Many jobs of queue ${Q} fail`,
      `{{ $value | humanizePercentage }} of the jobs of queue ${Q} that finished in the last ${t.window} failed for good (threshold ${percent(t.maxRatio)}, counted once at least ${t.minFinished} jobs finished).`,
    ];
  });

  perQueue('BullMQJobsStalling', 'stalls', (m, t) => [
    `${sel(need('bullmq_jobs_stalled', t.window), m)} * ${durationSeconds(t.window)} > ${t.maxStalls}`,
    `Jobs of queue ${Q} stall`,
    `{{ $value | printf "%.0f" }} jobs of queue ${Q} stalled in the last ${t.window} (threshold ${t.maxStalls}): their worker died or blocked its event loop mid-job.`,
  ]);

  perQueue('BullMQOrphanedActiveJobs', 'orphanedActive', (m, t) => [
    `${queueGauge('bullmq_queue_orphaned_active_jobs', m)} > 0`,
    `Active jobs of queue ${Q} lost their worker`,
    `{{ $value }} active jobs of queue ${Q} have an expired lock and nobody reclaims them: no live worker runs the stall check.`,
  ]);

  perQueue('BullMQDeadLetterQueueGrowing', 'dlqGrowing', (m, t) => [
    `${sel(need('bullmq_dlq_added', t.window), m)} * ${durationSeconds(t.window)} > ${t.maxAdded}`,
    `Jobs of queue ${Q} are being dead-lettered`,
    `{{ $value | printf "%.0f" }} jobs of queue ${Q} were moved to its dead-letter queue in the last ${t.window} (threshold ${t.maxAdded}).`,
  ]);

  perQueue('BullMQDeadLetterQueueNotEmpty', 'dlqNotEmpty', (m, t) => [
    `${queueGauge('bullmq_dlq_jobs', m)} > 0`,
    `Dead-letter queue of ${Q} holds jobs`,
    `{{ $value }} jobs sit in the dead-letter queue of ${Q}: inspect them, then redrive or purge.`,
  ]);

  perQueue('BullMQEventsLost', 'eventsLost', (m, t) => [
    `${sel(need('bullmq_exporter_events_lost', t.window), m)} * ${durationSeconds(t.window)} > 0`,
    `Counters of queue ${Q} miss events`,
    `{{ $value | printf "%.0f" }} events of queue ${Q} were trimmed from its stream before queuelens read them in the last ${t.window}: its counters and latency histograms undercount.`,
  ]);

  perQueue('BullMQEventsLagging', 'eventsLag', (m, t) => [
    `${queueGauge('bullmq_exporter_events_lag_seconds', m)} > ${t.maxLagSeconds}`,
    `Event reader lags on queue ${Q}`,
    `The oldest event of queue ${Q} the reader has not processed is {{ $value | humanizeDuration }} old (threshold ${humanSeconds(t.maxLagSeconds)}), or the leader has not committed for that long: its counters and latencies are late, and events may be trimmed before they are read.`,
  ]);

  // ---- wait-time SLO, from the wait histogram ----
  const sloRecords: RecordingRule[] = [];
  const sloAlerts: AlertRule[] = [];
  const burnWindows = [...new Set([...s.burnRates.fast, ...s.burnRates.slow].flatMap((b) => [b.long, b.short]))].sort(
    (a, b) => durationSeconds(a) - durationSeconds(b),
  );
  for (const { matcher: m, t, labels } of variants(s, 'waitSlo')) {
    for (const w of burnWindows) {
      const dedup = (series: string): string =>
        `sum by (prefix, queue) (max by (prefix, queue, job_name, attempt) (rate(${series}[${w}])))`;
      sloRecords.push({
        record: sloErrorRecord(w),
        expr: `1 - (
  ${dedup(sel('bullmq_job_wait_seconds_bucket', leMatcher(t.thresholdSeconds), m))}
  /
  ${dedup(sel('bullmq_job_wait_seconds_count', m))}
)`,
        ...(Object.keys(labels).length > 0 ? { labels } : {}),
      });
    }
    const budget = Number((1 - t.objective).toPrecision(6));
    const burn = (pairs: typeof s.burnRates.fast): string =>
      pairs
        .map(
          (p) => `(
  ${sel(sloErrorRecord(p.long), m)} > (${p.factor} * ${budget})
  and
  ${sel(sloErrorRecord(p.short), m)} > (${p.factor} * ${budget})
)`,
        )
        .join('\nor\n');
    const objective = `${percent(t.objective)} of jobs taken within ${humanSeconds(t.thresholdSeconds)}`;
    const windowsText = (pairs: typeof s.burnRates.fast): string =>
      pairs.map((p) => `${p.long}/${p.short} at ${p.factor}x`).join(' or ');
    sloAlerts.push(
      alert(
        'BullMQWaitTimeSLOFastBurn',
        burn(s.burnRates.fast),
        s.burnRates.fastFor,
        `Queue ${Q} burns its wait-time error budget fast`,
        `{{ $value | humanizePercentage }} of the jobs of queue ${Q} waited longer than ${humanSeconds(t.thresholdSeconds)} (objective: ${objective}; burn ${windowsText(s.burnRates.fast)}).`,
        { labels },
      ),
      alert(
        'BullMQWaitTimeSLOSlowBurn',
        burn(s.burnRates.slow),
        s.burnRates.slowFor,
        `Queue ${Q} burns its wait-time error budget`,
        `{{ $value | humanizePercentage }} of the jobs of queue ${Q} waited longer than ${humanSeconds(t.thresholdSeconds)} (objective: ${objective}; burn ${windowsText(s.burnRates.slow)}).`,
        { labels },
      ),
    );
  }

  // ---- the exporter itself ----
  const exporterAlerts: AlertRule[] = [
    alert(
      'BullMQExporterDown',
      `up{${job}} == 0
or
(
  bullmq_exporter_up{${job}} == 0
  unless on (job)
  max by (job) (bullmq_exporter_redis_up{${job}}) == 0
)`,
      s.exporter.downFor,
      'queuelens replica {{ $labels.instance }} is down',
      'queuelens replica {{ $labels.instance }} (job {{ $labels.job }}) cannot be scraped or its last collection failed (value {{ $value }}); the other replicas still serve the metrics.',
      { perQueue: false },
    ),
    alert(
      'BullMQExporterDown',
      `absent((up{${job}} == 1) and on (job, instance) (bullmq_exporter_up{${job}} == 1))
unless on ()
max(bullmq_exporter_redis_up{${job}}) == 0`,
      s.exporter.downFor,
      'No queuelens replica is collecting',
      `No replica of job ${s.exporterJob} is up and collecting: queue metrics are missing and every BullMQ alert is blind.`,
      { perQueue: false, severity: 'critical' },
    ),
    alert(
      'BullMQRedisDown',
      `max by (job) (bullmq_exporter_redis_up{${job}}) == 0`,
      s.exporter.redisDownFor,
      'queuelens cannot reach Redis',
      'No replica of job {{ $labels.job }} can reach Redis (bullmq_exporter_redis_up = {{ $value }}): producers and workers are likely failing too.',
      { perQueue: false },
    ),
    alert(
      'BullMQEventReaderNoLeader',
      `max by (job) (bullmq_exporter_leader{${job}}) == 0`,
      s.exporter.noLeaderFor,
      'No queuelens replica reads the event streams',
      'No replica of job {{ $labels.job }} holds the event-reader lease (leader = {{ $value }}): job counters and latency histograms have stopped.',
      { perQueue: false },
    ),
    alert(
      'BullMQExporterQueuesDropped',
      `max by (job) (bullmq_exporter_queues_dropped{${job}}) > 0`,
      s.exporter.queuesDroppedFor,
      'queuelens ignores queues beyond its cap',
      '{{ $value }} queues found by job {{ $labels.job }} exceed --max-queues and are not monitored.',
      { perQueue: false },
    ),
  ];

  // ---- recording rules, emitted last so that `need` has seen every window ----
  const rateRecords: RecordingRule[] = [];
  for (const [base, windows] of needed) {
    if (base === 'bullmq_jobs_finished') continue;
    for (const w of [...windows].sort()) rateRecords.push({ record: rateRecord(base, w), expr: queueRate(COUNTERS[base], w) });
  }
  // Terminal outcomes; the two rates differ by name only, so they add up without needing both to exist.
  for (const w of [...(needed.get('bullmq_jobs_finished') ?? [])].sort()) {
    rateRecords.push({
      record: rateRecord('bullmq_jobs_finished', w),
      expr: `sum by (prefix, queue) ({__name__=~"prefix_queue:bullmq_jobs_(completed|failed):rate${w}"})`,
    });
  }
  const w = s.dashboardWindow;
  for (const [h, label] of Object.entries(HISTOGRAMS) as Array<[keyof typeof HISTOGRAMS, string]>) {
    rateRecords.push({ record: histogramRecord(h, 'bucket', w), expr: queueRate(`${h}_bucket`, w, { keep: ['le'], extra: [label] }) });
    rateRecords.push({ record: histogramRecord(h, 'count', w), expr: queueRate(`${h}_count`, w, { extra: [label] }) });
    rateRecords.push({ record: histogramRecord(h, 'sum', w), expr: queueRate(`${h}_sum`, w, { extra: [label] }) });
  }

  return [
    { name: 'queuelens.rates', rules: rateRecords },
    { name: 'queuelens.slo', rules: sloRecords },
    { name: 'queuelens.exporter', rules: exporterAlerts },
    { name: 'queuelens.queues', rules: queueAlerts },
    { name: 'queuelens.slo-alerts', rules: sloAlerts },
  ];
}

export function renderRulesYaml(groups: RuleGroup[]): string {
  const header = [
    '# Generated by `npm run gen:monitoring` from src/monitoring/settings.ts: edit that file, not this one.',
    '# Every replica exports the same numbers, so rules deduplicate with max over replicas and never sum them.',
  ].join('\n');
  return `${header}\n${stringify({ groups }, { lineWidth: 0, aliasDuplicateObjects: false })}`;
}

/** The same groups as a prometheus-operator PrometheusRule, for deploy/k8s/. */
export function renderPrometheusRule(groups: RuleGroup[], exporterJob: string): string {
  const header = [
    '# Generated by `npm run gen:monitoring` from src/monitoring/settings.ts: edit that file, not this one.',
    '# The groups are exactly those of alerts/queuelens.rules.yml.',
  ].join('\n');
  const rule = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: exporterJob, labels: { 'app.kubernetes.io/name': exporterJob, 'app.kubernetes.io/component': 'alerts' } },
    spec: { groups },
  };
  return `${header}\n${stringify(rule, { lineWidth: 0, aliasDuplicateObjects: false })}`;
}
