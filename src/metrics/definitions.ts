// Every metric queuelens exports, in one place: name, type, help and labels. docs/metrics.md is generated
// from this file (`npm run gen:docs`), and a test fails when the two drift apart.
import { EXPOSED_BUCKETS_SECONDS } from '../events/buckets.js';

export type MetricType = 'gauge' | 'counter' | 'histogram';

export interface MetricDef {
  name: string;
  type: MetricType;
  help: string;
  labels: readonly string[];
  /** Where the value comes from, for the docs. */
  source: string;
  buckets?: readonly number[];
  /**
   * The series is absent while its value is 0 (it is for nearly every queue, and no alert reads it from 0): the
   * series budget, docs/metrics.md (cardinality).
   */
  sparse?: true;
}

const Q = ['prefix', 'queue'] as const;
/** Event metrics carry job_name only with --job-name-label. */
const QJ = ['prefix', 'queue', 'job_name'] as const;
const EVENTS = 'events stream, read by the leader and persisted in Redis; every replica renders the same value';

export const METRICS = {
  queueJobs: {
    name: 'bullmq_queue_jobs',
    type: 'gauge',
    help: "Jobs in each state at the last collection (v6 keeps a paused queue's jobs in waiting). completed and failed are bounded by the queue's retention.",
    labels: [...Q, 'state'],
    source: 'LLEN wait/active, ZCARD prioritized/delayed/waiting-children/completed/failed',
  },
  queuePaused: {
    name: 'bullmq_queue_paused',
    type: 'gauge',
    help: '1 when the queue is paused; absent while it is not (a flag that is 0 for almost every queue is a series per queue for nothing; the bundled rules read it with `unless ... == 1`).',
    labels: Q,
    source: 'HEXISTS meta paused',
    sparse: true,
  },
  queueOldestWaitingAge: {
    name: 'bullmq_queue_oldest_waiting_age_seconds',
    type: 'gauge',
    help: 'How long the next job to run has been eligible (enqueue time plus its delay); 0 when nothing waits. A paused queue keeps its true age (BullMQ 5 and 6); the bundled alerts leave paused queues out.',
    labels: Q,
    source:
      'head of wait (or of prioritized when wait is empty): timestamp + opts.delay, or the start of its last attempt if later, or (a flow parent) the finish of its last child if later',
  },
  queueDelayedOverdue: {
    name: 'bullmq_queue_delayed_overdue_jobs',
    type: 'gauge',
    help: 'Delayed jobs whose due time has passed but that no worker has promoted yet (a no-consumer signal).',
    labels: Q,
    source: 'ZCOUNT delayed -inf (now*4096',
  },
  queueOldestActiveAge: {
    name: 'bullmq_queue_oldest_active_age_seconds',
    type: 'gauge',
    help: 'How long the longest-running active job has been running; 0 when none is active.',
    labels: Q,
    source: 'processedOn of the tail of active',
  },
  queueOrphanedActive: {
    name: 'bullmq_queue_orphaned_active_jobs',
    type: 'gauge',
    help: 'Active jobs whose lock has expired: their worker died and BullMQ has not reclaimed them yet. Absent while 0 (the series budget; the bundled alert reads it with `> 0`).',
    labels: Q,
    source: 'PTTL <job>:lock = -2 for every id in active',
    sparse: true,
  },
  queueWorkers: {
    name: 'bullmq_queue_workers',
    type: 'gauge',
    help: 'Workers attached to the queue: the larger of the named worker connections (CLIENT LIST) and the distinct workers holding active-job locks (a worker whose name Redis refused, e.g. with a space, counts while it runs a job). Absent when the Redis does not allow CLIENT LIST.',
    labels: Q,
    source: 'CLIENT LIST names <prefix>:<base64(queue)>[:w:<name>]',
  },
  queueRateLimited: {
    name: 'bullmq_queue_rate_limited',
    type: 'gauge',
    help: "1 while the queue's rate limiter holds jobs back: a limiter window open, jobs waiting and its counter at the maximum. Global limit (queue.setGlobalRateLimit): the max stored in meta. queue.rateLimit()/worker.rateLimit(): always 1 while the window lasts. A Worker `limiter` option, whose max BullMQ never stores: the max is learnt as the highest counter seen, and the flag is 1 only once at least two separate windows (the last ones seen with jobs waiting) were seen at that same max in their first half, i.e. filled early and held there; a look below the max with jobs waiting clears it. What is learnt is kept under the own prefix (`<own>:limiters`), written only when it changes, so replicas and restarts agree. Limits: 0 for the first windows of a limiter (at least two are needed), a limiter that only reaches its max in the second half of its windows (barely binding) is not flagged, and when the collection interval is close to a multiple of the limiter duration the looks can keep falling in the second half of the windows, so a binding limiter may read 0 for a long time. Absent while 0 (the series budget).",
    labels: Q,
    source: 'PTTL/GET limiter, HGET meta max',
    sparse: true,
  },
  dlqJobs: {
    name: 'bullmq_dlq_jobs',
    type: 'gauge',
    help: 'Jobs parked in the dead-letter queue <queue>-dlq (every state but completed); queue is the source queue. A queue is a dead-letter queue only when its source queue exists; the bundled alerts, /health and the status page leave dead-letter queues out by this same series.',
    labels: Q,
    source: 'the state counts of <queue>-dlq',
  },
  dlqOldestAge: {
    name: 'bullmq_dlq_oldest_age_seconds',
    type: 'gauge',
    help: 'Age of the oldest job waiting in the dead-letter queue <queue>-dlq; 0 when it is empty.',
    labels: Q,
    source: 'head of <queue>-dlq wait',
  },
  exporterBuildInfo: {
    name: 'bullmq_exporter_build_info',
    type: 'gauge',
    help: 'Always 1; the labels say which queuelens and which Node.js runtime serve these metrics.',
    labels: ['version', 'nodejs_version'],
    source: 'package.json version, process.version',
  },
  exporterUp: {
    name: 'bullmq_exporter_up',
    type: 'gauge',
    help: '1 when the last collection succeeded. Queue gauges are absent while it is 0.',
    labels: [],
    source: 'collector',
  },
  exporterRedisUp: {
    name: 'bullmq_exporter_redis_up',
    type: 'gauge',
    help: '1 when Redis answers: 0 while the connection is down and while commands get no answer within their deadline (max(2 s, collect interval)), as with a hung Redis.',
    labels: [],
    source: "connection state and the last collection's command deadline",
  },
  exporterCollectDuration: {
    name: 'bullmq_exporter_collect_duration_seconds',
    type: 'gauge',
    help: "Wall time of the last collection's Redis reads (the first step of a cycle; see bullmq_exporter_cycle_duration_seconds).",
    labels: [],
    source: 'collector',
  },
  exporterCycleDuration: {
    name: 'bullmq_exporter_cycle_duration_seconds',
    type: 'gauge',
    help: 'Wall time of the last whole collection cycle: Redis reads, event accounting read-back, rendering and the status board.',
    labels: [],
    source: 'sidecar',
  },
  exporterCollectInterval: {
    name: 'bullmq_exporter_collect_interval_seconds',
    type: 'gauge',
    help: 'The collection interval in force: --collect-interval, or more while whole cycles take longer than it (half again the last cycle; logged). Freshness (/readyz, the staleness of /metrics) is judged against 3 times this.',
    labels: [],
    source: 'sidecar',
  },
  exporterLastCollect: {
    name: 'bullmq_exporter_last_collect_timestamp_seconds',
    type: 'gauge',
    help: 'Unix time of the last successful collection.',
    labels: [],
    source: 'collector',
  },
  exporterCollectErrors: {
    name: 'bullmq_exporter_collect_errors_total',
    type: 'counter',
    help: 'Collections that failed (Redis unreachable, timed out or refused).',
    labels: [],
    source: 'collector',
  },
  exporterQueues: {
    name: 'bullmq_exporter_queues',
    type: 'gauge',
    help: 'Queues watched, per prefix.',
    labels: ['prefix'],
    source: 'discovery',
  },
  exporterQueuesDropped: {
    name: 'bullmq_exporter_queues_dropped',
    type: 'gauge',
    help: 'Queues found but not exported, by reason: max_queues (beyond --max-queues), name_too_long (over 1024 bytes), not_utf8 (a name that is not UTF-8), exposition_size (names over 128 bytes per --max-queues in total), unreadable (the last collection could not read it).',
    labels: ['reason'],
    source: 'discovery',
  },
  jobsAdded: {
    name: 'bullmq_jobs_added_total',
    type: 'counter',
    help: 'Jobs added (an add rejected by deduplication or a duplicate job id is not counted). job_name only with --job-name-label.',
    labels: QJ,
    source: `added events; ${EVENTS}`,
  },
  jobsCompleted: {
    name: 'bullmq_jobs_completed_total',
    type: 'counter',
    help: 'Jobs that completed.',
    labels: QJ,
    source: `completed events; ${EVENTS}`,
  },
  jobsFailed: {
    name: 'bullmq_jobs_failed_total',
    type: 'counter',
    help: 'Jobs that failed for good (retries exhausted, UnrecoverableError, stalled too often). Attempts that will run again count in bullmq_jobs_retried_total.',
    labels: QJ,
    source: `failed events (BullMQ emits them only for final failures); ${EVENTS}`,
  },
  jobsRetried: {
    name: 'bullmq_jobs_retried_total',
    type: 'counter',
    help: 'Attempts that ended and will run again: with a backoff or at once. A manual rate-limit re-queue and a DelayedError look the same on the stream and count here too.',
    labels: QJ,
    source: `delayed after active or for a job not seen added, or waiting prev=active not followed by stalled; ${EVENTS}`,
  },
  jobsStalled: {
    name: 'bullmq_jobs_stalled_total',
    type: 'counter',
    help: 'Attempts whose worker died or stopped renewing its lock; BullMQ moved the job back to wait (or fails it past maxStalledCount).',
    labels: QJ,
    source: `waiting prev=active followed by stalled; ${EVENTS}`,
  },
  jobsDeduplicated: {
    name: 'bullmq_jobs_deduplicated_total',
    type: 'counter',
    help: 'Adds that deduplication discarded or that replaced a pending job; the series appears with the first one (only queues that use deduplication have it). With keepLastIfActive the add BullMQ keeps for after the active job counts as added when it is created, not here; the adds it replaced do.',
    labels: QJ,
    source: `deduplicated events; ${EVENTS}`,
    sparse: true,
  },
  jobWait: {
    name: 'bullmq_job_wait_seconds',
    type: 'histogram',
    help: 'From the moment a job became eligible to run (added, or the end of its delay or backoff) to the moment a worker took it: every take, first attempts, retries and restarts after a stall alike (the wait-time SLO counts them all).',
    labels: QJ,
    source: `entry times of waiting/active; due time of delayed events instead of the lazy promotion; ${EVENTS}`,
    buckets: EXPOSED_BUCKETS_SECONDS,
  },
  jobProcessing: {
    name: 'bullmq_job_processing_seconds',
    type: 'histogram',
    help: 'Duration of each attempt, from active to its end, whatever its outcome (completed, failed, failed and retried: their counts are bullmq_jobs_completed_total, _failed_total and _retried_total). Stalled attempts are counted, not observed.',
    labels: QJ,
    source: `entry times of active and the attempt's end; ${EVENTS}`,
    buckets: EXPOSED_BUCKETS_SECONDS,
  },
  jobE2e: {
    name: 'bullmq_job_e2e_seconds',
    type: 'histogram',
    help: 'From added to the final outcome, completed or failed (bullmq_jobs_completed_total and _failed_total count each), retries and delays included. A finished job run again by job.retry() gets a second observation, from that retry.',
    labels: QJ,
    source: `entry times of added and completed/failed; ${EVENTS}`,
    buckets: EXPOSED_BUCKETS_SECONDS,
  },
  dlqAdded: {
    name: 'bullmq_dlq_added_total',
    type: 'counter',
    help: 'Jobs added to the dead-letter queue <queue>-dlq; queue is the source queue.',
    labels: Q,
    source: `added events of <queue>-dlq; ${EVENTS}`,
  },
  exporterLeader: {
    name: 'bullmq_exporter_leader',
    type: 'gauge',
    help: '1 on a replica that holds an event reader lease (with --events-shards: at least one shard) and reads those streams.',
    labels: [],
    source: 'lease <own-prefix>:leader:all, or <own-prefix>:leader:<i>-of-<n> per shard',
  },
  exporterEventsLag: {
    name: 'bullmq_exporter_events_lag_seconds',
    type: 'gauge',
    help: "Age of the oldest event the reader has not processed yet; 0 when it is caught up. While a queue's events keep coming and its counters are committed at the busy pace, the time since their last commit: every event they miss is younger. The oldest, not the newest: whenever events flow the newest unread one is about 0 s old, however far behind the reader is. Keeps growing while the leader commits nothing (stalled or gone); absent for queues discovery no longer lists.",
    labels: Q,
    source:
      "oldest unread entry's age at the leader's last commit for the queue, plus Redis TIME since that commit (for a queue caught up at a commit that applied nothing: the time since the later of that commit and its shard reader's last heartbeat, beyond the leader's grace; at one that applied entries, which leaves the queue open to the commit pace: the time since that commit)",
  },
  exporterEventsRead: {
    name: 'bullmq_exporter_events_read_total',
    type: 'counter',
    help: 'Stream entries the reader processed.',
    labels: Q,
    source: EVENTS,
  },
  exporterEventsLost: {
    name: 'bullmq_exporter_events_lost_total',
    type: 'counter',
    help: "Stream entries trimmed away before the reader saw them (counted exactly, with XINFO STREAM entries-added). Event counters undercount by what is lost here. A queue born after the reader first watched its prefix (from its first sync on, even while the prefix held no queue) counts its whole trimmed history here (and reads what its stream still holds); so does one whose oldest retained entry is newer than the time the reader was installed. Queues that existed before start at their last entry, with nothing counted or lost. One known undercount: a queue obliterated and re-created under the same name while no reader ran (or in one transaction), so that its deletion was never seen, is short by the old stream's entries already read.",
    labels: Q,
    source: `XINFO STREAM entries-added, length and first entry vs the cursor; ${EVENTS}`,
  },
  exporterEventsUnmatched: {
    name: 'bullmq_exporter_events_unmatched_total',
    type: 'counter',
    help: 'Attempt ends whose start the reader never saw (started before it, or lost): counted, but without a duration. The series appears with the first one.',
    labels: Q,
    source: EVENTS,
    sparse: true,
  },
  exporterEventsEvicted: {
    name: 'bullmq_exporter_events_evicted_total',
    type: 'counter',
    help: "Jobs dropped from the reader's bounded in-flight map, counted on the queue that lost them (more in flight over all queues than --events-max-in-flight: the queue tracking the most jobs drops its oldest, so one queue cannot starve another; or idle for 24 h); their later events are unmatched. Jobs drain(), clean() or obliterate() removed without an event are forgotten by a reconciliation against Redis each maintenance pass, not evicted. The series appears with the first eviction.",
    labels: Q,
    source: EVENTS,
    sparse: true,
  },
} as const satisfies Record<string, MetricDef>;

export type MetricKey = keyof typeof METRICS;
