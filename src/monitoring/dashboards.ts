// Builds the Grafana dashboards (overview and per-queue drill-down) with the Grafana Foundation SDK. Pure: the
// generator writes them to dashboards/*.json. Queries read the recording rules of alert-rules.ts where one
// exists, deduplicate replicas with max (never sum), and compute quantiles only with histogram_quantile over
// bucket rates summed by le.
import {
  GraphThresholdsStyleConfigBuilder,
  GraphThresholdsStyleMode,
  LegendDisplayMode,
  LegendPlacement,
  SortOrder,
  StackingConfigBuilder,
  StackingMode,
  TooltipDisplayMode,
  VisibilityMode,
  VizLegendOptionsBuilder,
  VizTooltipOptionsBuilder,
} from '@grafana/grafana-foundation-sdk/common';
import {
  DashboardBuilder,
  DashboardLinkBuilder,
  DashboardLinkType,
  DatasourceVariableBuilder,
  QueryVariableBuilder,
  RowBuilder,
  ThresholdsConfigBuilder,
  ThresholdsMode,
  VariableRefresh,
  VariableSort,
  type Dashboard,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { DataqueryBuilder } from '@grafana/grafana-foundation-sdk/prometheus';
import { PanelBuilder as StatBuilder } from '@grafana/grafana-foundation-sdk/stat';
import { PanelBuilder as TimeseriesBuilder } from '@grafana/grafana-foundation-sdk/timeseries';
import { HISTOGRAMS, histogramRecord, OVERVIEW_DASHBOARD, QUEUE_DASHBOARD, rateRecord, sloErrorRecord } from './alert-rules.js';
import { eachDeploymentLabel, promString } from './dashboards-jsonnet.js';
import { deadLetterQueues, runnableJobs } from './promql.js';
import type { MonitoringSettings } from '../thresholds/monitoring-settings.js';

const DS = { type: 'prometheus', uid: '${datasource}' };
const QUANTILES = [0.5, 0.95, 0.99] as const;

type Target = [expr: string, legend: string];

/**
 * What names one queue in a query: the deployment labels (settings deploymentLabels, one template variable each)
 * and prefix, queue. D selects the chosen deployments (every query carries it), Q the chosen queues of them,
 * BY is the grouping that keeps two deployments' `bull:email` apart, LEGEND names such a series.
 */
interface Keys {
  D: string;
  Q: string;
  BY: string;
  LEGEND: string;
}

function keys(s: MonitoringSettings): Keys {
  const D = eachDeploymentLabel(s.deploymentLabels, (l) => `${l}=~"$${l}", `);
  return {
    D,
    Q: `${D}prefix=~"$prefix", queue=~"$queue"`,
    BY: `${eachDeploymentLabel(s.deploymentLabels, (l) => `${l}, `)}prefix, queue`,
    LEGEND: `${eachDeploymentLabel(s.deploymentLabels, (l) => `{{${l}}}/`)}{{prefix}}:{{queue}}`,
  };
}

function targets(list: Target[]): DataqueryBuilder[] {
  return list.map(([expr, legend], i) =>
    new DataqueryBuilder()
      .expr(expr)
      .legendFormat(legend)
      .refId(String.fromCharCode(65 + i))
      .datasource(DS),
  );
}

function redAbove(value: number): ThresholdsConfigBuilder {
  // Grafana's base step has a null value: it covers everything below the first real step.
  return new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps([
    { value: null as unknown as number, color: 'green' },
    { value, color: 'red' },
  ]);
}

function timeseries(
  title: string,
  description: string,
  unit: string,
  list: Target[],
  opts: { width?: number; stack?: boolean; threshold?: number } = {},
): TimeseriesBuilder {
  const p = new TimeseriesBuilder()
    .title(title)
    .description(description)
    .datasource(DS)
    .unit(unit)
    .min(0)
    .height(8)
    .span(opts.width ?? 12)
    .fillOpacity(opts.stack ? 40 : 10)
    .lineWidth(1)
    .showPoints(VisibilityMode.Never)
    .legend(new VizLegendOptionsBuilder().showLegend(true).displayMode(LegendDisplayMode.List).placement(LegendPlacement.Bottom))
    // One tooltip for every queue at that instant, worst first: what on-call compares.
    .tooltip(new VizTooltipOptionsBuilder().mode(TooltipDisplayMode.Multi).sort(SortOrder.Descending));
  if (opts.stack) p.stacking(new StackingConfigBuilder().mode(StackingMode.Normal).group('A'));
  if (opts.threshold !== undefined) {
    p.thresholds(redAbove(opts.threshold));
    p.thresholdsStyle(new GraphThresholdsStyleConfigBuilder().mode(GraphThresholdsStyleMode.Line));
  }
  for (const t of targets(list)) p.withTarget(t);
  return p;
}

function stat(title: string, description: string, unit: string, expr: string, opts: { width?: number; red?: number } = {}): StatBuilder {
  const p = new StatBuilder()
    .title(title)
    .description(description)
    .datasource(DS)
    .unit(unit)
    .height(4)
    .span(opts.width ?? 4);
  if (opts.red !== undefined) p.thresholds(redAbove(opts.red));
  for (const t of targets([[expr, '']])) p.withTarget(t);
  return p;
}

/**
 * p50/p95/p99 of a histogram per queue, from the recorded per-queue bucket rates, or (a Prometheus that ingests
 * the sidecar's native histograms has no buckets to record) from the native histogram: summing its replicas
 * scales every bucket alike, which leaves a quantile unchanged.
 */
function quantiles({ Q, BY, LEGEND }: Keys, h: keyof typeof HISTOGRAMS, window: MonitoringSettings['dashboardWindow']): Target[] {
  return QUANTILES.map((q) => [
    `histogram_quantile(${q}, sum by (${BY}, le) (${histogramRecord(h, 'bucket', window)}{${Q}}))\nor\nhistogram_quantile(${q}, sum by (${BY}) (rate(${h}{${Q}}[${window}])))`,
    `${LEGEND} p${Math.round(q * 100)}`,
  ]);
}

function variables(b: DashboardBuilder, s: MonitoringSettings): DashboardBuilder {
  const { D } = keys(s);
  b.withVariable(new DatasourceVariableBuilder('datasource').label('Data source').type('prometheus'));
  // One per deployment label; "All" is `.*`, which also matches series without the label (a single deployment).
  for (const l of s.deploymentLabels) {
    b.withVariable(
      new QueryVariableBuilder(l)
        .label(l)
        .datasource(DS)
        .query(`label_values(bullmq_queue_jobs, ${l})`)
        .refresh(VariableRefresh.OnTimeRangeChanged)
        .sort(VariableSort.AlphabeticalAsc)
        .multi(true)
        .includeAll(true)
        .allValue('.*')
        .current({ text: ['All'], value: ['$__all'] }),
    );
  }
  return b
    .withVariable(
      new QueryVariableBuilder('prefix')
        .label('Prefix')
        .datasource(DS)
        .query(`label_values(bullmq_queue_jobs{${D}prefix!=""}, prefix)`)
        .refresh(VariableRefresh.OnTimeRangeChanged)
        .sort(VariableSort.AlphabeticalAsc)
        .multi(true)
        .includeAll(true)
        .current({ text: ['All'], value: ['$__all'] }),
    )
    .withVariable(
      new QueryVariableBuilder('queue')
        .label('Queue')
        .datasource(DS)
        .query(`label_values(bullmq_queue_jobs{${D}prefix=~"$prefix"}, queue)`)
        .regex(`/^(?!${s.ignoredQueues}$).*$/`)
        .refresh(VariableRefresh.OnTimeRangeChanged)
        .sort(VariableSort.AlphabeticalAsc)
        .multi(true)
        .includeAll(true)
        .current({ text: ['All'], value: ['$__all'] }),
    );
}

function base(s: MonitoringSettings, title: string, uid: string, description: string): DashboardBuilder {
  return variables(
    new DashboardBuilder(title)
      .uid(uid)
      .description(description)
      .tags(['queuelens', 'bullmq'])
      .editable()
      .refresh('30s')
      .time({ from: 'now-3h', to: 'now' })
      .timezone('browser')
      .link(new DashboardLinkBuilder('queuelens').type(DashboardLinkType.Dashboards).tags(['queuelens']).asDropdown(true).includeVars(true).keepTime(true)),
    s,
  );
}

/** Panel ids in build order, so the JSON is stable and every panel is addressable (viewPanel links). */
function withIds(d: Dashboard): Dashboard {
  let id = 1;
  for (const p of d.panels ?? []) (p as { id?: number }).id = id++;
  return d;
}

export function buildOverviewDashboard(s: MonitoringSettings): Dashboard {
  const w = s.dashboardWindow;
  const k = keys(s);
  const { D, Q, BY, LEGEND } = k;
  const job = `${D}job=${promString(s.exporterJob)}`;
  const b = base(
    s,
    'queuelens / Overview',
    OVERVIEW_DASHBOARD.uid,
    'Every BullMQ queue at a glance: depth, flow, failures, latency, stalls, dead letters and the health of queuelens itself.',
  );

  b.withRow(new RowBuilder('At a glance'))
    .withPanel(
      stat(
        'Jobs ready to run',
        'Waiting + prioritized jobs over the selected queues, dead-letter queues left out.',
        'short',
        `sum(${runnableJobs(BY, Q)} unless on (${BY}) ${deadLetterQueues(BY)})`,
      ),
    )
    .withPanel(
      stat(
        'Oldest waiting job',
        "Longest time any selected queue's next job has been ready to run: the headline SLI.",
        's',
        `max(max by (${BY}) (bullmq_queue_oldest_waiting_age_seconds{${Q}}))`,
        { red: s.defaults.oldestJob.maxAgeSeconds },
      ),
    )
    .withPanel(
      stat(
        'Failure ratio',
        `Terminal failures / finished jobs over ${w}.`,
        'percentunit',
        `sum(${rateRecord('bullmq_jobs_failed', w)}{${Q}}) / sum(${rateRecord('bullmq_jobs_finished', w)}{${Q}})`,
        { red: s.defaults.failureRate.maxRatio },
      ),
    )
    .withPanel(
      stat('Dead-lettered jobs', "Jobs parked in the selected queues' dead-letter queues.", 'short', `sum(max by (${BY}) (bullmq_dlq_jobs{${Q}}))`, { red: 1 }),
    )
    .withPanel(
      stat(
        'Workers',
        'Worker connections over the selected queues (absent when Redis refuses CLIENT LIST).',
        'short',
        `sum(max by (${BY}) (bullmq_queue_workers{${Q}}))`,
      ),
    )
    .withPanel(
      stat(
        'Replicas collecting',
        'queuelens replicas that are scraped and whose last collection succeeded.',
        'short',
        `count((up{${job}} == 1) and on (job, instance) (bullmq_exporter_up{${job}} == 1)) or vector(0)`,
      ),
    );

  b.withRow(new RowBuilder('Depth and flow'))
    .withPanel(
      timeseries(
        'Depth by state',
        'Jobs per queue and state as Redis holds them (completed and failed are bounded by retention, so they are left out).',
        'short',
        [[`max by (${BY}, state) (bullmq_queue_jobs{${Q}, state!~"completed|failed"})`, `${LEGEND} {{state}}`]],
        { stack: true },
      ),
    )
    .withPanel(
      timeseries(
        'Oldest waiting job',
        "How long each queue's next job has been ready to run; the red line is the default alert threshold.",
        's',
        [[`max by (${BY}) (bullmq_queue_oldest_waiting_age_seconds{${Q}})`, LEGEND]],
        { threshold: s.defaults.oldestJob.maxAgeSeconds },
      ),
    )
    .withPanel(
      timeseries('Throughput in / out', 'Jobs added (in) and finished for good (out) per second.', 'ops', [
        [`${rateRecord('bullmq_jobs_added', w)}{${Q}}`, `${LEGEND} in`],
        [`${rateRecord('bullmq_jobs_finished', w)}{${Q}}`, `${LEGEND} out`],
      ]),
    )
    .withPanel(
      timeseries(
        'Failure ratio',
        'Terminal failures / (completed + failed); retries are not failures.',
        'percentunit',
        [[`${rateRecord('bullmq_jobs_failed', w)}{${Q}} / ${rateRecord('bullmq_jobs_finished', w)}{${Q}}`, LEGEND]],
        { threshold: s.defaults.failureRate.maxRatio },
      ),
    );

  b.withRow(new RowBuilder('Latency'))
    .withPanel(
      timeseries(
        'Wait time',
        'From eligible (after any delay or backoff) to taken by a worker: p50, p95, p99.',
        's',
        quantiles(k, 'bullmq_job_wait_seconds', w),
        { width: 8 },
      ),
    )
    .withPanel(
      timeseries('Processing time', 'One attempt, from taken to done: p50, p95, p99.', 's', quantiles(k, 'bullmq_job_processing_seconds', w), { width: 8 }),
    )
    .withPanel(
      timeseries('End-to-end time', 'From added to its final outcome, retries included: p50, p95, p99.', 's', quantiles(k, 'bullmq_job_e2e_seconds', w), {
        width: 8,
      }),
    );

  b.withRow(new RowBuilder('Trouble'))
    .withPanel(
      timeseries(
        'Stalls and retries per minute',
        'Stalled attempts (the worker died or blocked mid-job) and failed attempts that will run again.',
        'short',
        [
          [`${rateRecord('bullmq_jobs_stalled', w)}{${Q}} * 60`, `${LEGEND} stalled`],
          [`${rateRecord('bullmq_jobs_retried', w)}{${Q}} * 60`, `${LEGEND} retried`],
        ],
        { width: 8 },
      ),
    )
    .withPanel(
      timeseries(
        'Dead-letter queues',
        'Depth of each dead-letter queue and jobs dead-lettered per minute.',
        'short',
        [
          [`max by (${BY}) (bullmq_dlq_jobs{${Q}})`, `${LEGEND} depth`],
          [`${rateRecord('bullmq_dlq_added', w)}{${Q}} * 60`, `${LEGEND} added/min`],
        ],
        { width: 8 },
      ),
    )
    .withPanel(timeseries('Workers', 'Worker connections per queue.', 'short', [[`max by (${BY}) (bullmq_queue_workers{${Q}})`, LEGEND]], { width: 8 }));

  b.withRow(new RowBuilder('queuelens health'))
    .withPanel(
      timeseries(
        'Replicas',
        'Per replica: scraped (up), last collection succeeded, Redis reachable, event-reader leader.',
        'short',
        [
          [`up{${job}}`, '{{instance}} up'],
          [`bullmq_exporter_up{${job}}`, '{{instance}} collecting'],
          [`bullmq_exporter_redis_up{${job}}`, '{{instance}} redis'],
          [`bullmq_exporter_leader{${job}}`, '{{instance}} leader'],
        ],
        { width: 8 },
      ),
    )
    .withPanel(
      timeseries(
        'Collection',
        'Wall time of the last whole cycle, the interval in force (above --collect-interval while cycles outgrow it) and the age of the last successful collection, per replica.',
        's',
        [
          [`bullmq_exporter_cycle_duration_seconds{${job}}`, '{{instance}} cycle'],
          [`bullmq_exporter_collect_interval_seconds{${job}}`, '{{instance}} interval'],
          [`time() - bullmq_exporter_last_collect_timestamp_seconds{${job}}`, '{{instance}} age'],
        ],
        { width: 8 },
      ),
    )
    .withPanel(
      timeseries(
        'Errors and coverage',
        'Failed collections per minute per replica, queues watched and queues not exported, by reason (bullmq_exporter_queues_dropped).',
        'short',
        [
          [`rate(bullmq_exporter_collect_errors_total{${job}}[$__rate_interval]) * 60`, '{{instance}} errors/min'],
          [
            `max by (${eachDeploymentLabel(s.deploymentLabels, (l) => `${l}, `)}prefix) (bullmq_exporter_queues{${job}})`,
            `${eachDeploymentLabel(s.deploymentLabels, (l) => `{{${l}}}/`)}{{prefix}} queues`,
          ],
          [`max by (reason) (bullmq_exporter_queues_dropped{${job}})`, 'dropped: {{reason}}'],
        ],
        { width: 8 },
      ),
    )
    .withPanel(
      timeseries('Event reader', 'Age of the oldest unread event per queue; events lost to stream trimming per minute.', 's', [
        [`max by (${BY}) (bullmq_exporter_events_lag_seconds{${Q}})`, `${LEGEND} lag`],
        [`${rateRecord('bullmq_exporter_events_lost', w)}{${Q}} * 60`, `${LEGEND} lost/min`],
      ]),
    )
    .withPanel(timeseries('Memory', 'Resident memory per replica.', 'bytes', [[`process_resident_memory_bytes{${job}}`, '{{instance}}']]));

  return withIds(b.build());
}

export function buildQueueDashboard(s: MonitoringSettings): Dashboard {
  const w = s.dashboardWindow;
  const k = keys(s);
  const { Q, BY, LEGEND } = k;
  const b = base(
    s,
    'queuelens / Queue',
    QUEUE_DASHBOARD.uid,
    'One row per selected queue: state, flow, latency, stalls, dead letters, the wait-time SLO and the event reader.',
  );
  const strip = (targets: Target[]): Target[] => targets.map(([e, l]) => [e, l.replace(`${LEGEND} `, '')] as Target);
  const burnWindows = [...new Set([...s.burnRates.fast, ...s.burnRates.slow].map((p) => p.long))];

  b.withRow(new RowBuilder('$prefix:$queue').repeat('queue'))
    .withPanel(stat('Ready to run', 'Waiting + prioritized jobs.', 'short', runnableJobs(BY, Q), { width: 3 }))
    .withPanel(stat('Active', 'Jobs being processed now.', 'short', `max by (${BY}) (bullmq_queue_jobs{${Q}, state="active"})`, { width: 3 }))
    .withPanel(stat('Delayed', 'Jobs waiting for their delay or backoff.', 'short', `max by (${BY}) (bullmq_queue_jobs{${Q}, state="delayed"})`, { width: 3 }))
    .withPanel(
      stat('Oldest waiting', 'How long the next job has been ready to run.', 's', `max by (${BY}) (bullmq_queue_oldest_waiting_age_seconds{${Q}})`, {
        width: 3,
        red: s.defaults.oldestJob.maxAgeSeconds,
      }),
    )
    .withPanel(stat('Workers', 'Worker connections.', 'short', `max by (${BY}) (bullmq_queue_workers{${Q}})`, { width: 3 }))
    .withPanel(
      stat(
        'Paused',
        '1 when the queue is paused.',
        'short',
        `max by (${BY}) (bullmq_queue_paused{${Q}})\nor\nmax by (${BY}) (bullmq_queue_oldest_waiting_age_seconds{${Q}}) * 0`,
        { width: 3, red: 1 },
      ),
    )
    .withPanel(
      stat(
        'Rate limited',
        '1 while the rate limiter holds jobs back.',
        'short',
        `max by (${BY}) (bullmq_queue_rate_limited{${Q}})\nor\nmax by (${BY}) (bullmq_queue_oldest_waiting_age_seconds{${Q}}) * 0`,
        { width: 3 },
      ),
    )
    .withPanel(stat('Dead-lettered', 'Jobs in the dead-letter queue.', 'short', `max by (${BY}) (bullmq_dlq_jobs{${Q}})`, { width: 3, red: 1 }))
    .withPanel(
      timeseries(
        'Depth by state',
        'Jobs in each state (completed and failed are bounded by retention).',
        'short',
        [[`max by (${BY}, state) (bullmq_queue_jobs{${Q}})`, '{{state}}']],
        { width: 8, stack: false },
      ),
    )
    .withPanel(
      timeseries(
        'Flow',
        'Jobs per second: added, completed, failed for good, retried, deduplicated.',
        'ops',
        [
          [`${rateRecord('bullmq_jobs_added', w)}{${Q}}`, 'added'],
          [`${rateRecord('bullmq_jobs_completed', w)}{${Q}}`, 'completed'],
          [`${rateRecord('bullmq_jobs_failed', w)}{${Q}}`, 'failed'],
          [`${rateRecord('bullmq_jobs_retried', w)}{${Q}}`, 'retried'],
          // Absent until the queue's first deduplication (docs/metrics.md, cardinality): 0 until then.
          [`${rateRecord('bullmq_jobs_deduplicated', w)}{${Q}}\nor\n${rateRecord('bullmq_jobs_added', w)}{${Q}} * 0`, 'deduplicated'],
        ],
        { width: 8 },
      ),
    )
    .withPanel(
      timeseries(
        'Ages',
        'Oldest waiting job and longest-running active job.',
        's',
        [
          [`max by (${BY}) (bullmq_queue_oldest_waiting_age_seconds{${Q}})`, 'oldest waiting'],
          [`max by (${BY}) (bullmq_queue_oldest_active_age_seconds{${Q}})`, 'oldest active'],
        ],
        { width: 8 },
      ),
    )
    .withPanel(timeseries('Wait time', 'Eligible to taken: p50, p95, p99.', 's', strip(quantiles(k, 'bullmq_job_wait_seconds', w)), { width: 8 }))
    .withPanel(
      timeseries(
        'Processing time',
        'One attempt, from taken to done, whatever its outcome: p50, p95, p99 (the flow panel counts the outcomes).',
        's',
        strip(quantiles(k, 'bullmq_job_processing_seconds', w)),
        { width: 8 },
      ),
    )
    .withPanel(
      timeseries(
        'End-to-end time',
        'Added to final outcome, completed or failed, retries included: p50, p95, p99.',
        's',
        strip(quantiles(k, 'bullmq_job_e2e_seconds', w)),
        { width: 8 },
      ),
    )
    .withPanel(
      timeseries(
        'Wait-time SLO: share of slow jobs',
        'Share of jobs that waited longer than the SLO threshold, over the burn-rate alert windows.',
        'percentunit',
        burnWindows.map((lw) => [`${sloErrorRecord(lw)}{${Q}}`, lw] as Target),
        { width: 8 },
      ),
    )
    .withPanel(
      timeseries(
        'Stalls, orphans, dead letters',
        'Stalls per minute, active jobs with an expired lock, dead-letter depth and inflow per minute.',
        'short',
        [
          [`${rateRecord('bullmq_jobs_stalled', w)}{${Q}} * 60`, 'stalled/min'],
          // Absent while 0 (the series budget): 0 from the queue's other gauges then.
          [
            `max by (${BY}) (bullmq_queue_orphaned_active_jobs{${Q}})\nor\nmax by (${BY}) (bullmq_queue_oldest_waiting_age_seconds{${Q}}) * 0`,
            'orphaned active',
          ],
          [`max by (${BY}) (bullmq_dlq_jobs{${Q}})`, 'dead-lettered'],
          [`${rateRecord('bullmq_dlq_added', w)}{${Q}} * 60`, 'dead-lettered/min'],
        ],
        { width: 8 },
      ),
    )
    .withPanel(
      timeseries(
        'Event reader',
        'Age of the oldest unread event; events read, lost to trimming and unmatched per second.',
        'short',
        [
          [`max by (${BY}) (bullmq_exporter_events_lag_seconds{${Q}})`, 'lag (s)'],
          [`${rateRecord('bullmq_exporter_events_read', w)}{${Q}}`, 'read/s'],
          [`${rateRecord('bullmq_exporter_events_lost', w)}{${Q}}`, 'lost/s'],
          [`${rateRecord('bullmq_exporter_events_unmatched', w)}{${Q}}\nor\n${rateRecord('bullmq_exporter_events_read', w)}{${Q}} * 0`, 'unmatched/s'],
        ],
        { width: 8 },
      ),
    );

  return withIds(b.build());
}

export function buildDashboards(s: MonitoringSettings): Record<string, Dashboard> {
  return {
    'queuelens-overview.json': buildOverviewDashboard(s),
    'queuelens-queue.json': buildQueueDashboard(s),
  };
}
