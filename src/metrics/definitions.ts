// Every metric queuelens exports, in one place: name, type, help and labels. docs/metrics.md is generated
// from this file (`npm run gen:docs`), and a test fails when the two drift apart.

export type MetricType = 'gauge' | 'counter' | 'histogram';

export interface MetricDef {
  name: string;
  type: MetricType;
  help: string;
  labels: readonly string[];
  /** Where the value comes from, for the docs. */
  source: string;
  buckets?: readonly number[];
}

const Q = ['prefix', 'queue'] as const;

export const METRICS = {
  queueJobs: {
    name: 'bullmq_queue_jobs',
    type: 'gauge',
    help: 'Jobs in each state at the last collection (v6 keeps a paused queue\'s jobs in waiting). completed and failed are bounded by the queue\'s retention.',
    labels: [...Q, 'state'],
    source: 'LLEN wait/active, ZCARD prioritized/delayed/waiting-children/completed/failed',
  },
  queuePaused: {
    name: 'bullmq_queue_paused',
    type: 'gauge',
    help: '1 when the queue is paused.',
    labels: Q,
    source: 'HEXISTS meta paused',
  },
  queueOldestWaitingAge: {
    name: 'bullmq_queue_oldest_waiting_age_seconds',
    type: 'gauge',
    help: 'How long the next job to run has been eligible (enqueue time plus its delay); 0 when nothing waits.',
    labels: Q,
    source: 'head of wait (or of prioritized when wait is empty): timestamp + opts.delay, or the start of its last attempt if later',
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
    help: 'Active jobs whose lock has expired: their worker died and BullMQ has not reclaimed them yet.',
    labels: Q,
    source: 'PTTL <job>:lock = -2 for every id in active',
  },
  queueWorkers: {
    name: 'bullmq_queue_workers',
    type: 'gauge',
    help: 'Worker connections attached to the queue. Absent when the Redis does not allow CLIENT LIST.',
    labels: Q,
    source: 'CLIENT LIST names <prefix>:<base64(queue)>[:w:<name>]',
  },
  queueRateLimited: {
    name: 'bullmq_queue_rate_limited',
    type: 'gauge',
    help: '1 while the queue\'s rate limiter holds jobs back (limiter window open and its maximum reached).',
    labels: Q,
    source: 'PTTL/GET limiter, HGET meta max',
  },
  dlqJobs: {
    name: 'bullmq_dlq_jobs',
    type: 'gauge',
    help: 'Jobs parked in the dead-letter queue <queue>-dlq (every state but completed); queue is the source queue.',
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
    help: '1 when the sidecar\'s Redis connection is ready.',
    labels: [],
    source: 'connection state',
  },
  exporterCollectDuration: {
    name: 'bullmq_exporter_collect_duration_seconds',
    type: 'gauge',
    help: 'Wall time of the last collection.',
    labels: [],
    source: 'collector',
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
    help: 'Queues found beyond --max-queues and therefore not exported.',
    labels: [],
    source: 'discovery',
  },
} as const satisfies Record<string, MetricDef>;

export type MetricKey = keyof typeof METRICS;
