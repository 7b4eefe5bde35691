// The Prometheus recording and alerting rules, built from a config object (config.libsonnet's _config, or any
// override of it). This is the only definition of the rules: `npm run gen:monitoring` renders alerts/ and the
// PrometheusRule from it, and src/monitoring/alert-rules.ts calls jsonnet on it.
local promql = import '../lib/promql.libsonnet';

local overviewDashboard = { uid: 'queuelens-overview', slug: 'queuelens-overview' };
local queueDashboard = { uid: 'queuelens-queue', slug: 'queuelens-queue' };

// Counters whose per-queue rates the rules record, by recorded base name, in output order.
local counters = [
  ['bullmq_jobs_added', 'bullmq_jobs_added_total'],
  ['bullmq_jobs_completed', 'bullmq_jobs_completed_total'],
  ['bullmq_jobs_failed', 'bullmq_jobs_failed_total'],
  ['bullmq_jobs_retried', 'bullmq_jobs_retried_total'],
  ['bullmq_jobs_stalled', 'bullmq_jobs_stalled_total'],
  ['bullmq_jobs_deduplicated', 'bullmq_jobs_deduplicated_total'],
  ['bullmq_dlq_added', 'bullmq_dlq_added_total'],
  ['bullmq_exporter_events_lost', 'bullmq_exporter_events_lost_total'],
  ['bullmq_exporter_events_read', 'bullmq_exporter_events_read_total'],
  ['bullmq_exporter_events_unmatched', 'bullmq_exporter_events_unmatched_total'],
];
// Histograms whose per-queue bucket, count and sum rates the rules record for the dashboards.
local histograms = [
  'bullmq_job_wait_seconds',
  'bullmq_job_processing_seconds',
  'bullmq_job_e2e_seconds',
];

local rateRecord(base, window) = 'prefix_queue:%s:rate%s' % [base, window];
local histogramRecord(h, part, window) =
  if part == 'bucket' then 'prefix_queue_le:%s_bucket:rate%s' % [h, window] else 'prefix_queue:%s_%s:rate%s' % [h, part, window];
local sloErrorRecord(window) = 'prefix_queue:bullmq_job_wait_seconds:slo_error_ratio_rate%s' % window;
local takenRecord(window) = 'prefix_queue:bullmq_job_wait_seconds_count:increase%s' % window;

local Q = '{{ $labels.prefix }}:{{ $labels.queue }}';
local lines(xs) = std.join('\n', xs);

function(config)
  // One evaluation of the config: jsonnet re-evaluates object fields on every access.
  local c = std.parseJson(std.manifestJsonMinified(config));
  local p = promql { key:: c.deploymentLabels + ['prefix', 'queue'] };
  local K = p.by;
  // The deployment a replica belongs to: its job and the deployment labels.
  local J = std.join(', ', ['job'] + c.deploymentLabels);
  // One rule per distinct threshold set: the defaults for every queue without a differing override (excluded by
  // name), then one rule per group of queues sharing an override. c.ignoredQueues never reach the default rule.
  local variants(key) =
    local base = c.defaults[key];
    local special = [q for q in std.sort(std.objectFields(c.overrides)) if p.thresholdsFor(c, q)[key] != base];
    local distinct = std.foldl(
      function(acc, q) local t = p.thresholdsFor(c, q)[key]; if std.member(acc, t) then acc else acc + [t], special, []
    );
    local groups = [{ t: t, queues: [q for q in special if p.thresholdsFor(c, q)[key] == t] } for t in distinct];
    local queues = std.flattenArrays([g.queues for g in groups]);
    local ignored = if c.ignoredQueues != '' then ['queue!~%s' % p.str(c.ignoredQueues)] else [];
    if std.length(queues) == 0 then [{ matchers: ignored, t: base, labels: {} }]
    else [{ matchers: ignored + ['queue!~"%s"' % p.anyOf(queues)], t: base, labels: { thresholds: 'default' } }] + [
      { matchers: ['queue=~"%s"' % p.anyOf(g.queues)], t: g.t, labels: { thresholds: std.join(',', g.queues) } }
      for g in groups
    ];

  // The dashboard opens on the alert's own deployment (a variable per deployment label; an absent label gives
  // an empty value, which matches exactly the series without it) and, for a per-queue alert, its own queue.
  local varParams(labels) = std.join('&', ['var-%s={{ $labels.%s | urlquery }}' % [l, l] for l in labels]);
  local links(name, perQueue) = {
    runbook_url: '%s/%s.md' % [c.links.runbookBaseUrl, name],
    dashboard_url:
      if perQueue
      then '%s/d/%s/%s?%s' % [c.links.grafanaUrl, queueDashboard.uid, queueDashboard.slug, varParams(c.deploymentLabels + ['prefix', 'queue'])]
      else '%s/d/%s/%s' % [c.links.grafanaUrl, overviewDashboard.uid, overviewDashboard.slug]
           + (if std.length(c.deploymentLabels) > 0 then '?' + varParams(c.deploymentLabels) else ''),
  };
  local severity(name) =
    assert std.objectHas(c.severities, name) : 'settings.severities has no entry for ' + name;
    c.severities[name];
  // One alert from its description, by name: name, expr, for, summary, description; perQueue (default true: the
  // dashboard link opens the queue), severity (default: settings.severities[name]), labels (added to severity).
  local alert(a) =
    local d = { perQueue: true, severity: null, labels: {} } + a;
    {
      alert: d.name,
      expr: d.expr,
      labels: { severity: if d.severity == null then severity(d.name) else d.severity } + d.labels,
      annotations: { summary: d.summary, description: d.description } + links(d.name, d.perQueue),
    } + (if p.durationSeconds(d['for']) > 0 then { 'for': d['for'] } else {});

  local job = 'job=%s' % p.str(c.exporterJob);
  local sel(name, matchers) = p.sel(name, matchers);

  // Each per-queue alert: its settings key, the counter rates it reads per window, and build(): its expr, summary and
  // description by name (alert() takes every alert as such an object, never by position).
  local queueAlertDefs = [
    {
      name: 'BullMQNoWorkers',
      key: 'noWorkers',
      needs(t):: [['bullmq_jobs_finished', t.window]],
      build(m, t):: {
        expr: lines([
          '(',
          '  ' + p.runnableJobs(m),
          '  + ' + p.queueGauge('bullmq_queue_delayed_overdue_jobs', m),
          ') > 0',
          'and on (%s)' % K,
          '(',
          '    ' + p.queueGauge('bullmq_queue_workers', m) + ' == 0',
          '  or',
          '    (',
          '      ' + p.queueGauge('bullmq_queue_jobs', ['state="active"'] + m) + ' == 0',
          '      and on (%s)' % K,
          '      ' + sel(rateRecord('bullmq_jobs_finished', t.window), m) + ' == 0',
          '    )',
          ')',
          'unless on (%s)' % K,
          p.queueGauge('bullmq_queue_paused', m) + ' == 1',
        ]),
        summary: 'No worker consumes queue ' + Q,
        description: '{{ $value }} jobs of queue %s are ready to run (waiting, prioritized or overdue delayed), and no worker is connected or none finished a job in the last %s.' % [Q, t.window],
      },
    },
    {
      name: 'BullMQOldestJobTooOld',
      key: 'oldestJob',
      needs(t):: [],
      build(m, t):: {
        expr: lines([
          '%s > %s' % [p.queueGauge('bullmq_queue_oldest_waiting_age_seconds', m), p.num(t.maxAgeSeconds)],
          'unless on (%s)' % K,
          p.queueGauge('bullmq_queue_paused', m) + ' == 1',
        ]),
        summary: 'Jobs of queue %s wait too long' % Q,
        description: 'The next job of queue %s has been ready to run for {{ $value | humanizeDuration }} (threshold %s).' % [Q, p.humanSeconds(t.maxAgeSeconds)],
      },
    },
    {
      name: 'BullMQBacklogGrowing',
      key: 'backlog',
      needs(t):: [['bullmq_jobs_added', t.window], ['bullmq_jobs_finished', t.window]],
      build(m, t)::
        local added = sel(rateRecord('bullmq_jobs_added', t.window), m);
        local finished = sel(rateRecord('bullmq_jobs_finished', t.window), m);
        {
          expr: lines([
            '(',
            '  ' + added,
            '  - (%s or %s * 0)' % [finished, added],
            ') * 60 > 0',
            'and on (%s)' % K,
            '%s > %s' % [p.runnableJobs(m), p.num(t.minJobs)],
          ]),
          summary: 'Backlog of queue %s keeps growing' % Q,
          description: 'Queue %s takes in {{ $value | humanize }} more jobs per minute than it finishes (over %s), with more than %s jobs waiting.' % [Q, t.window, p.num(t.minJobs)],
        },
    },
    {
      name: 'BullMQHighFailureRate',
      key: 'failureRate',
      needs(t):: [['bullmq_jobs_failed', t.window], ['bullmq_jobs_finished', t.window]],
      build(m, t)::
        local failed = sel(rateRecord('bullmq_jobs_failed', t.window), m);
        local finished = sel(rateRecord('bullmq_jobs_finished', t.window), m);
        {
          expr: lines([
            '%s / %s > %s' % [failed, finished, p.num(t.maxRatio)],
            'and on (%s)' % K,
            '%s * %s >= %s' % [finished, p.num(p.durationSeconds(t.window)), p.num(t.minFinished)],
          ]),
          summary: 'Many jobs of queue %s fail' % Q,
          description: '{{ $value | humanizePercentage }} of the jobs of queue %s that finished in the last %s failed for good (threshold %s, counted once at least %s jobs finished).' % [Q, t.window, p.percent(t.maxRatio), p.num(t.minFinished)],
        },
    },
    {
      name: 'BullMQJobsStalling',
      key: 'stalls',
      needs(t):: [['bullmq_jobs_stalled', t.window]],
      build(m, t):: {
        expr: '%s * %s > %s' % [sel(rateRecord('bullmq_jobs_stalled', t.window), m), p.num(p.durationSeconds(t.window)), p.num(t.maxStalls)],
        summary: 'Jobs of queue %s stall' % Q,
        description: '{{ $value | printf "%%.0f" }} jobs of queue %s stalled in the last %s (threshold %s): their worker died or blocked its event loop mid-job.' % [Q, t.window, p.num(t.maxStalls)],
      },
    },
    {
      name: 'BullMQOrphanedActiveJobs',
      key: 'orphanedActive',
      needs(t):: [],
      build(m, t):: {
        expr: '%s > 0' % p.queueGauge('bullmq_queue_orphaned_active_jobs', m),
        summary: 'Active jobs of queue %s lost their worker' % Q,
        description: '{{ $value }} active jobs of queue %s have an expired lock and nobody reclaims them: no live worker runs the stall check.' % Q,
      },
    },
    {
      name: 'BullMQDeadLetterQueueGrowing',
      key: 'dlqGrowing',
      needs(t):: [['bullmq_dlq_added', t.window]],
      build(m, t):: {
        expr: '%s * %s > %s' % [sel(rateRecord('bullmq_dlq_added', t.window), m), p.num(p.durationSeconds(t.window)), p.num(t.maxAdded)],
        summary: 'Jobs of queue %s are being dead-lettered' % Q,
        description: '{{ $value | printf "%%.0f" }} jobs of queue %s were moved to its dead-letter queue in the last %s (threshold %s).' % [Q, t.window, p.num(t.maxAdded)],
      },
    },
    {
      name: 'BullMQDeadLetterQueueNotEmpty',
      key: 'dlqNotEmpty',
      needs(t):: [],
      build(m, t):: {
        expr: '%s > 0' % p.queueGauge('bullmq_dlq_jobs', m),
        summary: 'Dead-letter queue of %s holds jobs' % Q,
        description: '{{ $value }} jobs sit in the dead-letter queue of %s: inspect them, then redrive or purge.' % Q,
      },
    },
    {
      name: 'BullMQEventsLost',
      key: 'eventsLost',
      needs(t):: [['bullmq_exporter_events_lost', t.window]],
      build(m, t):: {
        expr: '%s * %s > 0' % [sel(rateRecord('bullmq_exporter_events_lost', t.window), m), p.num(p.durationSeconds(t.window))],
        summary: 'Counters of queue %s miss events' % Q,
        description: '{{ $value | printf "%%.0f" }} events of queue %s were trimmed from its stream before queuelens read them in the last %s: its counters and latency histograms undercount.' % [Q, t.window],
      },
    },
    {
      name: 'BullMQEventsLagging',
      key: 'eventsLag',
      needs(t):: [],
      build(m, t):: {
        expr: '%s > %s' % [p.queueGauge('bullmq_exporter_events_lag_seconds', m), p.num(t.maxLagSeconds)],
        summary: 'Event reader lags on queue %s' % Q,
        description: 'The oldest event of queue %s the reader has not processed is {{ $value | humanizeDuration }} old (threshold %s), or the leader has not committed for that long: its counters and latencies are late, and events may be trimmed before they are read.' % [Q, p.humanSeconds(t.maxLagSeconds)],
      },
    },
  ];

  // Dead-letter queues park jobs on purpose; the BullMQDeadLetter* alerts speak for them on their source queue.
  local scoped(name, expr) =
    if std.startsWith(name, 'BullMQDeadLetter') then expr
    else lines(['(', expr, ')', 'unless on (%s)' % K, p.deadLetterQueues()]);
  local queueAlerts = [
    local built = def.build(v.matchers, v.t);
    alert(built { name: def.name, expr: scoped(def.name, built.expr), 'for': v.t['for'], labels: v.labels })
    for def in queueAlertDefs
    for v in variants(def.key)
  ];

  // ---- which counter rates the alerts need, per window ----
  local finishedParts(base, w) = if base == 'bullmq_jobs_finished' then [[base, w], ['bullmq_jobs_completed', w], ['bullmq_jobs_failed', w]] else [[base, w]];
  local needed = std.flattenArrays([
    finishedParts(n[0], n[1])
    for n in [[x[0], c.dashboardWindow] for x in counters] + [['bullmq_jobs_finished', c.dashboardWindow]] + std.flattenArrays([
      def.needs(v.t)
      for def in queueAlertDefs
      for v in variants(def.key)
    ])
  ]);
  local windowsOf(base) = std.set([n[1] for n in needed if n[0] == base]);

  // ---- wait-time SLO, from the wait histogram ----
  local burn = c.burnRates;
  local burnWindows = std.sort(
    std.foldl(function(acc, w) if std.member(acc, w) then acc else acc + [w], std.flattenArrays([[b.long, b.short] for b in burn.fast + burn.slow]), []),
    keyF=p.durationSeconds,
  );
  local sloVariants = variants('waitSlo');
  // A Prometheus that ingests the sidecar's native histograms (protobuf exposition) has no _bucket/_count series:
  // each ratio has a native form after `or`. Summing replicas' native histograms scales them alike, which leaves
  // a fraction unchanged; a native count is deduplicated with max like a classic one.
  local sloRecords = [
    local dedup(series) = 'sum by (%s) (max by (%s, job_name) (rate(%s[%s])))' % [K, K, series, w];
    {
      record: sloErrorRecord(w),
      expr: lines([
        '1 - (',
        '  ' + dedup(sel('bullmq_job_wait_seconds_bucket', [p.leMatcher(v.t.thresholdSeconds)] + v.matchers)),
        '  /',
        '  ' + dedup(sel('bullmq_job_wait_seconds_count', v.matchers)),
        ')',
        'or',
        '1 - histogram_fraction(0, %s, sum by (%s) (rate(%s[%s])))' % [p.num(v.t.thresholdSeconds), K, sel('bullmq_job_wait_seconds', v.matchers), w],
      ]),
    } + (if std.length(v.labels) > 0 then { labels: v.labels } else {})
    for v in sloVariants
    for w in burnWindows
  ];
  // Jobs taken per long window: a burn-rate pair needs at least t.minJobs of them.
  local longWindows = std.set([b.long for b in burn.fast + burn.slow]);
  local takenRecords = [
    {
      record: takenRecord(w),
      expr: lines([
        'sum by (%s) (max by (%s, job_name) (increase(%s[%s])))' % [K, K, sel('bullmq_job_wait_seconds_count', v.matchers), w],
        'or',
        'sum by (%s) (max by (%s, job_name) (histogram_count(increase(%s[%s]))))' % [K, K, sel('bullmq_job_wait_seconds', v.matchers), w],
      ]),
    } + (if std.length(v.labels) > 0 then { labels: v.labels } else {})
    for v in sloVariants
    for w in std.sort(longWindows, keyF=p.durationSeconds)
  ];
  local sloAlerts = std.flattenArrays([
    local t = v.t;
    local budget = p.round6(1 - t.objective);
    local burnExpr(pairs) = std.join('\nor\n', [
      lines([
        '(',
        '  %s > (%s * %s)' % [sel(sloErrorRecord(b.long), v.matchers), p.num(b.factor), p.num(budget)],
        '  and',
        '  %s > (%s * %s)' % [sel(sloErrorRecord(b.short), v.matchers), p.num(b.factor), p.num(budget)],
        '  and',
        '  %s >= %s' % [sel(takenRecord(b.long), v.matchers), p.num(t.minJobs)],
        ')',
      ])
      for b in pairs
    ]);
    local objective = '%s of jobs taken within %s' % [p.percent(t.objective), p.humanSeconds(t.thresholdSeconds)];
    local windowsText(pairs) = std.join(' or ', ['%s/%s at %sx' % [b.long, b.short, p.num(b.factor)] for b in pairs]);
    [
      alert({
        name: 'BullMQWaitTimeSLOFastBurn',
        expr: burnExpr(burn.fast),
        'for': burn.fastFor,
        summary: 'Queue %s burns its wait-time error budget fast' % Q,
        description: '{{ $value | humanizePercentage }} of the jobs of queue %s waited longer than %s (objective: %s; burn %s; counted once %s jobs were taken in the long window).' % [Q, p.humanSeconds(t.thresholdSeconds), objective, windowsText(burn.fast), p.num(t.minJobs)],
        labels: v.labels,
      }),
      alert({
        name: 'BullMQWaitTimeSLOSlowBurn',
        expr: burnExpr(burn.slow),
        'for': burn.slowFor,
        summary: 'Queue %s burns its wait-time error budget' % Q,
        description: '{{ $value | humanizePercentage }} of the jobs of queue %s waited longer than %s (objective: %s; burn %s; counted once %s jobs were taken in the long window).' % [Q, p.humanSeconds(t.thresholdSeconds), objective, windowsText(burn.slow), p.num(t.minJobs)],
        labels: v.labels,
      }),
    ]
    for v in sloVariants
  ]);

  // ---- the exporter itself ----
  local exporterAlerts = [
    alert({
      name: 'BullMQExporterDown',
      expr: lines([
        'up{%s} == 0' % job,
        'or',
        '(',
        '  bullmq_exporter_up{%s} == 0' % job,
        '  unless on (%s)' % J,
        '  max by (%s) (bullmq_exporter_redis_up{%s}) == 0' % [J, job],
        ')',
      ]),
      'for': c.exporter.downFor,
      summary: 'queuelens replica {{ $labels.instance }} is down',
      description: 'queuelens replica {{ $labels.instance }} (job {{ $labels.job }}) cannot be scraped or its last collection failed (value {{ $value }}) while Redis answers. Whether other replicas still serve the metrics is not known from this alert: the critical BullMQExporterDown fires when none does.',
      perQueue: false,
    }),
    alert({
      name: 'BullMQExporterDown',
      expr: lines([
        'absent((up{%s} == 1) and on (job, instance) (bullmq_exporter_up{%s} == 1))' % [job, job],
        'unless on ()',
        'max(bullmq_exporter_redis_up{%s}) == 0' % job,
      ]),
      'for': c.exporter.downFor,
      summary: 'No queuelens replica is collecting',
      description: 'No replica of job %s is up and collecting: queue metrics are missing and every BullMQ alert is blind.' % c.exporterJob,
      perQueue: false,
      severity: 'critical',
    }),
    alert({
      name: 'BullMQRedisDown',
      expr: 'max by (%s) (bullmq_exporter_redis_up{%s}) == 0' % [J, job],
      'for': c.exporter.redisDownFor,
      summary: 'queuelens cannot reach Redis',
      description: 'No replica of job {{ $labels.job }} can reach Redis (bullmq_exporter_redis_up = {{ $value }}): producers and workers are likely failing too.',
      perQueue: false,
    }),
    alert({
      name: 'BullMQEventReaderNoLeader',
      expr: 'max by (%s) (bullmq_exporter_leader{%s}) == 0' % [J, job],
      'for': c.exporter.noLeaderFor,
      summary: 'No queuelens replica reads the event streams',
      description: 'No replica of job {{ $labels.job }} holds the event-reader lease (leader = {{ $value }}): job counters and latency histograms have stopped.',
      perQueue: false,
    }),
    alert({
      name: 'BullMQExporterQueuesDropped',
      expr: 'max by (%s, reason) (bullmq_exporter_queues_dropped{%s}) > 0' % [J, job],
      'for': c.exporter.queuesDroppedFor,
      summary: 'queuelens leaves queues unmonitored',
      description: '{{ $value }} queues found by job {{ $labels.job }} are not monitored (reason {{ $labels.reason }}: beyond --max-queues, a name too long or not UTF-8, or unreadable).',
      perQueue: false,
    }),
  ];

  // ---- recording rules ----
  local w = c.dashboardWindow;
  local rateRecords =
    [
      { record: rateRecord(x[0], win), expr: p.queueRate(x[1], win) }
      for x in counters
      for win in windowsOf(x[0])
    ] + [
      // Terminal outcomes; the two rates differ by name only, so they add up without needing both to exist.
      { record: rateRecord('bullmq_jobs_finished', win), expr: 'sum by (%s) ({__name__=~"prefix_queue:bullmq_jobs_(completed|failed):rate%s"})' % [K, win] }
      for win in windowsOf('bullmq_jobs_finished')
    ] + std.flattenArrays([
      [
        { record: histogramRecord(h, 'bucket', w), expr: p.queueRate(h + '_bucket', w, keep=['le']) },
        { record: histogramRecord(h, 'count', w), expr: lines([p.queueRate(h + '_count', w), 'or', p.nativeRate('histogram_count', h, w)]) },
        { record: histogramRecord(h, 'sum', w), expr: lines([p.queueRate(h + '_sum', w), 'or', p.nativeRate('histogram_sum', h, w)]) },
      ]
      for h in histograms
    ]);

  [
    { name: 'queuelens.rates', rules: rateRecords },
    { name: 'queuelens.slo', rules: sloRecords + takenRecords },
    { name: 'queuelens.exporter', rules: exporterAlerts },
    { name: 'queuelens.queues', rules: queueAlerts },
    { name: 'queuelens.slo-alerts', rules: sloAlerts },
  ]
