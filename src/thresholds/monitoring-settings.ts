// Owns every alert threshold, window and link, in one place: the default `_config` of the monitoring mixin
// (mixin/config.libsonnet is generated from it) and the thresholds of the status page. `npm run gen:monitoring` renders
// alerts/queuelens.rules.yml and dashboards/*.json from these values; test/monitoring-generated.test.ts fails
// when the committed files drift from them. docs/monitoring.md explains each knob.

/** A Prometheus duration: 30s, 5m, 1h, 1d. */
export type Duration = `${number}${'s' | 'm' | 'h' | 'd'}`;

/** What each per-queue alert fires on. Every field can be overridden per queue in `overrides`. */
export interface QueueThresholds {
  /** Jobs wait (or delayed jobs are overdue) and no worker is connected, or nothing was consumed in `window`. */
  noWorkers: { window: Duration; for: Duration };
  /** The headline SLI: the next job to run has been eligible for longer than this. */
  oldestJob: { maxAgeSeconds: number; for: Duration };
  /** More jobs were added than finished over `window`, while more than `minJobs` wait. */
  backlog: { minJobs: number; window: Duration; for: Duration };
  /** Terminal failures / (completed + failed) over `window`, only once `minFinished` jobs finished in it. */
  failureRate: { maxRatio: number; minFinished: number; window: Duration; for: Duration };
  /** More than `maxStalls` stalls (a worker died or blocked its event loop mid-job) within `window`. */
  stalls: { maxStalls: number; window: Duration; for: Duration };
  /** Active jobs whose lock expired and that nobody reclaims. */
  orphanedActive: { for: Duration };
  /**
   * More than `maxAdded` jobs dead-lettered within `window`, for `for`: a trend, not one job. Stricter, per queue:
   * `{ maxAdded: 0, for: '0s' }` pages on the first dead letter.
   */
  dlqGrowing: { maxAdded: number; window: Duration; for: Duration };
  /** The dead-letter queue holds jobs that nobody redrove or purged. */
  dlqNotEmpty: { for: Duration };
  /** Stream entries trimmed before the event reader saw them, within `window`. */
  eventsLost: { window: Duration; for: Duration };
  /** The oldest unread event is older than this (the newest unread one is ~0 s old whenever events flow). */
  eventsLag: { maxLagSeconds: number; for: Duration };
  /**
   * Wait-time SLO: `objective` of jobs wait at most `thresholdSeconds` (from eligible to taken by a worker).
   * thresholdSeconds must be one of the bucket bounds of bullmq_job_wait_seconds. A burn-rate pair fires only
   * once at least `minJobs` jobs were taken in its long window: two slow jobs of a queue doing 12 an hour are
   * not an outage.
   */
  waitSlo: { thresholdSeconds: number; objective: number; minJobs: number };
}

export type Severity = 'critical' | 'warning' | 'info';

export interface BurnWindow {
  long: Duration;
  short: Duration;
  /** How many times faster than sustainable the error budget burns. */
  factor: number;
}

export interface MonitoringSettings {
  /** The Prometheus scrape job of the sidecar replicas (prometheus.yml). */
  exporterJob: string;
  /**
   * Regex of queue names the per-queue alerts and the dashboards' queue list leave out (none by default).
   * Dead-letter queues need no entry: the per-queue alerts leave out exactly the queues the sidecar counts as
   * dead-letter queues (deadLetterQueues in mixin/lib/promql.libsonnet), which have their own alerts (bullmq_dlq_*).
   */
  ignoredQueues: string;
  /**
   * Labels that tell one queuelens deployment (one Redis) from another inside one Prometheus, e.g. `namespace`
   * under prometheus-operator. Every per-queue rule keeps them, and Alertmanager's inhibitions match on them
   * (deploy/alertmanager/alertmanager.yml), so one Redis outage silences only its own deployment's alerts.
   */
  deploymentLabels: string[];
  links: {
    /**
     * runbook_url = `<runbookBaseUrl>/<AlertName>.md`. Default: the runbooks the sidecar serves at /runbooks, as
     * the compose demo publishes it (and `kubectl port-forward svc/queuelens 9487` does in Kubernetes).
     */
    runbookBaseUrl: string;
    /** dashboard_url = `<grafanaUrl>/d/<uid>/<slug>?var-...`. Default: the compose demo's Grafana. */
    grafanaUrl: string;
  };
  exporter: { downFor: Duration; redisDownFor: Duration; noLeaderFor: Duration; queuesDroppedFor: Duration };
  /** Window of the rates and quantiles the dashboards draw. */
  dashboardWindow: Duration;
  /** SRE-workbook multi-window, multi-burn-rate pairs: any pair firing fires the alert. */
  burnRates: { fast: BurnWindow[]; slow: BurnWindow[]; fastFor: Duration; slowFor: Duration };
  severities: Record<string, Severity>;
  defaults: QueueThresholds;
  /** Per queue name (any prefix): only the fields that differ from `defaults`. */
  overrides: Record<string, PartialThresholds>;
}

export type PartialThresholds = { [K in keyof QueueThresholds]?: Partial<QueueThresholds[K]> };

export const settings: MonitoringSettings = {
  exporterJob: 'queuelens',
  ignoredQueues: '',
  deploymentLabels: ['namespace'],
  links: {
    runbookBaseUrl: 'http://localhost:9487/runbooks',
    grafanaUrl: 'http://localhost:3000',
  },
  exporter: { downFor: '2m', redisDownFor: '1m', noLeaderFor: '5m', queuesDroppedFor: '15m' },
  dashboardWindow: '5m',
  burnRates: {
    // Google SRE workbook, chapter 5: 2% of a 30-day budget in 1 h, 5% in 6 h (page); 10% in 3 d (ticket).
    fast: [
      { long: '1h', short: '5m', factor: 14.4 },
      { long: '6h', short: '30m', factor: 6 },
    ],
    slow: [
      { long: '1d', short: '2h', factor: 3 },
      { long: '3d', short: '6h', factor: 1 },
    ],
    fastFor: '2m',
    slowFor: '15m',
  },
  severities: {
    BullMQExporterDown: 'warning', // one replica; the rule for "no replica at all" is critical
    BullMQRedisDown: 'critical',
    BullMQNoWorkers: 'critical',
    BullMQOldestJobTooOld: 'critical',
    BullMQBacklogGrowing: 'warning',
    BullMQHighFailureRate: 'critical',
    BullMQJobsStalling: 'warning',
    BullMQOrphanedActiveJobs: 'warning',
    BullMQDeadLetterQueueGrowing: 'warning',
    BullMQDeadLetterQueueNotEmpty: 'info',
    BullMQEventsLost: 'warning',
    BullMQEventsLagging: 'warning',
    BullMQEventReaderNoLeader: 'warning',
    BullMQExporterQueuesDropped: 'warning',
    BullMQWaitTimeSLOFastBurn: 'critical',
    BullMQWaitTimeSLOSlowBurn: 'warning',
  },
  defaults: {
    noWorkers: { window: '10m', for: '5m' },
    oldestJob: { maxAgeSeconds: 300, for: '1m' },
    backlog: { minJobs: 100, window: '15m', for: '15m' },
    failureRate: { maxRatio: 0.1, minFinished: 20, window: '15m', for: '5m' },
    stalls: { maxStalls: 0, window: '15m', for: '0s' },
    orphanedActive: { for: '5m' },
    dlqGrowing: { maxAdded: 5, window: '30m', for: '15m' },
    dlqNotEmpty: { for: '15m' },
    eventsLost: { window: '15m', for: '0s' },
    eventsLag: { maxLagSeconds: 30, for: '5m' },
    waitSlo: { thresholdSeconds: 30, objective: 0.99, minJobs: 50 },
  },
  overrides: {
    // Exports are long, batchy and nobody watches them finish: give them more room.
    export: {
      oldestJob: { maxAgeSeconds: 1800 },
      waitSlo: { thresholdSeconds: 300 },
    },
  },
};

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

export function durationSeconds(d: Duration): number {
  const m = /^(\d+(?:\.\d+)?)([smhd])$/.exec(d);
  if (!m) throw new Error(`bad duration ${d}: expected a number and one of s, m, h, d`);
  return Number(m[1]) * UNIT_SECONDS[m[2] as keyof typeof UNIT_SECONDS];
}

/** The thresholds a queue gets: defaults with its override applied field by field. */
export function thresholdsFor(s: MonitoringSettings, queue: string): QueueThresholds {
  const o = s.overrides[queue] ?? {};
  const out = { ...s.defaults } as Record<string, unknown>;
  for (const [k, v] of Object.entries(o)) out[k] = { ...(s.defaults as unknown as Record<string, object>)[k], ...v };
  return out as unknown as QueueThresholds;
}
