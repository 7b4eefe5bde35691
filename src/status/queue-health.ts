// Owns the per-queue health verdict shown by the status page, the JSON API and `queuelens top`: the same
// conditions the bundled alerts page for (alerts/), evaluated on the last collection and the 15-minute
// window, each reason naming its alert so a reader lands on the right runbook. Unlike /health thresholds
// (off by default, they pull a sidecar out of a load balancer), these only inform.
import { backlogOf, type QueueState } from '../collector/queue-snapshot.js';
import type { HealthReason, HealthStatus, QueueHealthView, ReasonSeverity, WindowView } from './queue-view.js';

export interface QueueHealthThresholds {
  /** Oldest waiting age (s) above which the queue is critical. */
  maxOldestAgeSeconds: number;
  /** Failure ratio over 15 min above which the queue is critical, once `minFinished` jobs finished. */
  maxFailureRatio: number;
  minFinished: number;
  /** Inflow above outflow over 15 min is a warning once more than this many jobs wait. */
  backlogMinJobs: number;
}

/** The defaults of the bundled alert rules; exports run long, so they get more room. */
export const DEFAULT_THRESHOLDS: QueueHealthThresholds = { maxOldestAgeSeconds: 300, maxFailureRatio: 0.1, minFinished: 20, backlogMinJobs: 100 };
export const THRESHOLD_OVERRIDES: Record<string, Partial<QueueHealthThresholds>> = { export: { maxOldestAgeSeconds: 1800 } };

export function thresholdsForQueue(queue: string): QueueHealthThresholds {
  return { ...DEFAULT_THRESHOLDS, ...THRESHOLD_OVERRIDES[queue] };
}

export interface QueueHealthInput {
  state: QueueState;
  deadLetterJobs: number;
  /** Jobs dead-lettered in the last 15 minutes; null without event accounting for the dead-letter queue. */
  deadLetteredLast15m: number | null;
  last15m: WindowView | null;
}

const RANK: Record<HealthStatus, number> = { ok: 0, warning: 1, critical: 2 };

export function assessQueue(input: QueueHealthInput, t: QueueHealthThresholds = thresholdsForQueue(input.state.ref.name)): QueueHealthView {
  const { state: q, deadLetterJobs, deadLetteredLast15m, last15m: w } = input;
  const reasons: HealthReason[] = [];
  const add = (code: string, severity: ReasonSeverity, alert: string | null, message: string) =>
    reasons.push({ code, severity, alert, runbook: alert ? `/runbooks/${alert}.md` : null, message });
  const backlog = backlogOf(q);
  const isDeadLetter = q.dlqOf !== undefined;

  // Nobody is expected to consume a dead-letter queue, and a paused queue's backlog is on purpose.
  if (!isDeadLetter && !q.paused && q.workers === 0 && (backlog > 0 || q.delayedOverdue > 0)) {
    const what = backlog > 0 ? `${backlog} job(s) waiting` : `${q.delayedOverdue} overdue delayed job(s)`;
    add('no_workers', 'critical', 'BullMQNoWorkers', `${what} and no worker connected`);
  }
  if (!isDeadLetter && q.oldestWaitingAgeSeconds > t.maxOldestAgeSeconds) {
    add('oldest_job_too_old', 'critical', 'BullMQOldestJobTooOld', `oldest waiting job eligible for ${formatAge(q.oldestWaitingAgeSeconds)} (limit ${formatAge(t.maxOldestAgeSeconds)})`);
  }
  if (w?.failureRatio != null) {
    const finished = (w.rates.completed + w.rates.failed) * w.seconds;
    if (finished >= t.minFinished && w.failureRatio > t.maxFailureRatio) {
      add('high_failure_rate', 'critical', 'BullMQHighFailureRate', `${(w.failureRatio * 100).toFixed(1)}% of finished jobs failed in the last ${formatAge(w.seconds)} (limit ${(t.maxFailureRatio * 100).toFixed(0)}%)`);
    }
  }
  if (w && backlog > t.backlogMinJobs && w.rates.added > w.rates.completed + w.rates.failed) {
    add('backlog_growing', 'warning', 'BullMQBacklogGrowing', `${backlog} jobs waiting and more arriving (${w.rates.added.toFixed(2)}/s) than finishing (${(w.rates.completed + w.rates.failed).toFixed(2)}/s)`);
  }
  if (w && w.rates.stalled > 0) {
    add('jobs_stalling', 'warning', 'BullMQJobsStalling', `${Math.round(w.rates.stalled * w.seconds)} job(s) stalled in the last ${formatAge(w.seconds)}`);
  }
  if (q.orphanedActive > 0) {
    add('orphaned_active', 'warning', 'BullMQOrphanedActiveJobs', `${q.orphanedActive} active job(s) whose worker lock expired and that nobody reclaims`);
  }
  if (deadLetteredLast15m !== null && deadLetteredLast15m > 0) {
    add('dead_letters_growing', 'warning', 'BullMQDeadLetterQueueGrowing', `${deadLetteredLast15m} job(s) dead-lettered in the last 15 min; ${deadLetterJobs} in ${q.ref.name}-dlq`);
  } else if (deadLetterJobs > 0) {
    add('dead_letters', 'warning', 'BullMQDeadLetterQueueNotEmpty', `${deadLetterJobs} job(s) in ${q.ref.name}-dlq`);
  }
  if (q.paused) add('paused', 'info', null, backlog > 0 ? `paused with ${backlog} job(s) waiting` : 'paused');
  if (q.rateLimited) add('rate_limited', 'info', null, 'rate limited right now');

  const status: HealthStatus = reasons.some((r) => r.severity === 'critical') ? 'critical' : reasons.some((r) => r.severity === 'warning') ? 'warning' : 'ok';
  return { status, rank: RANK[status], reasons };
}

/** 250 ms, 4.3 s, 42 s, 3m 20s, 2h 05m. */
export function formatAge(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
