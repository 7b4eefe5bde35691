// Owns the per-queue health verdict shown by the status page, the JSON API and `queuelens top`: the conditions
// the bundled alerts page for, with the same thresholds (src/thresholds/monitoring-settings.ts), evaluated on the last
// collection and the 15-minute window, each reason naming its alert so a reader lands on the right runbook.
// Unlike the alerts there is no `for:` delay: the page shows the condition as soon as it holds. Unlike /health
// thresholds (off by default, they pull a sidecar out of a load balancer), these only inform.
import { backlogOf, type QueueState } from '../domain/queue-snapshot.js';
import { settings, thresholdsFor, type QueueThresholds } from '../thresholds/monitoring-settings.js';
import type { HealthReason, HealthStatus, QueueHealthView, ReasonSeverity, WindowView } from './queue-view.js';

/** The bundled alerts' thresholds for a queue (src/thresholds/monitoring-settings.ts, per-queue overrides applied). */
export function thresholdsForQueue(queue: string): QueueThresholds {
  return thresholdsFor(settings, queue);
}

export interface QueueHealthInput {
  state: QueueState;
  deadLetterJobs: number;
  /** Jobs dead-lettered in the last 15 minutes; null without event accounting for the dead-letter queue. */
  deadLetteredLast15m: number | null;
  last15m: WindowView | null;
}

/** Every reason the verdict can give: its severity and the bundled alert (and runbook) for the same condition. */
export const REASONS = {
  no_workers: { severity: 'critical', alert: 'BullMQNoWorkers' },
  oldest_job_too_old: { severity: 'critical', alert: 'BullMQOldestJobTooOld' },
  high_failure_rate: { severity: 'critical', alert: 'BullMQHighFailureRate' },
  backlog_growing: { severity: 'warning', alert: 'BullMQBacklogGrowing' },
  jobs_stalling: { severity: 'warning', alert: 'BullMQJobsStalling' },
  orphaned_active: { severity: 'warning', alert: 'BullMQOrphanedActiveJobs' },
  dead_letters_growing: { severity: 'warning', alert: 'BullMQDeadLetterQueueGrowing' },
  dead_letters: { severity: 'warning', alert: 'BullMQDeadLetterQueueNotEmpty' },
  paused: { severity: 'info', alert: null },
  rate_limited: { severity: 'info', alert: null },
} as const satisfies Record<string, { severity: ReasonSeverity; alert: string | null }>;
export type ReasonCode = keyof typeof REASONS;

const RANK: Record<HealthStatus, number> = { ok: 0, warning: 1, critical: 2 };

export function assessQueue(input: QueueHealthInput, t: QueueThresholds = thresholdsForQueue(input.state.ref.name)): QueueHealthView {
  const { state: q, deadLetterJobs, deadLetteredLast15m, last15m: w } = input;
  const reasons: HealthReason[] = [];
  const add = (code: ReasonCode, message: string) => {
    const { severity, alert } = REASONS[code];
    reasons.push({ code, severity, alert, runbook: alert ? `/runbooks/${alert}.md` : null, message });
  };
  const backlog = backlogOf(q);
  // A dead-letter queue has no workers and a growing depth on purpose: the bundled alerts leave it out
  // (bullmq_dlq_* alerts speak for it on its source queue's row), so the verdict does too.
  if (q.dlqOf !== undefined) return informational(q, add, reasons);

  // A paused queue's backlog is on purpose.
  if (!q.paused && q.workers === 0 && (backlog > 0 || q.delayedOverdue > 0)) {
    const what = backlog > 0 ? `${backlog} job(s) waiting` : `${q.delayedOverdue} overdue delayed job(s)`;
    add('no_workers', `${what} and no worker connected`);
  }
  const maxAge = t.oldestJob.maxAgeSeconds;
  // A paused queue's age keeps growing on purpose (planned maintenance): shown, never paged for.
  if (!q.paused && q.oldestWaitingAgeSeconds > maxAge) {
    add('oldest_job_too_old', `oldest waiting job eligible for ${formatAge(q.oldestWaitingAgeSeconds)} (limit ${formatAge(maxAge)})`);
  }
  if (w?.failureRatio != null) {
    const finished = (w.rates.completed + w.rates.failed) * w.seconds;
    const { minFinished, maxRatio } = t.failureRate;
    if (finished >= minFinished && w.failureRatio > maxRatio) {
      add(
        'high_failure_rate',
        `${(w.failureRatio * 100).toFixed(1)}% of finished jobs failed in the last ${formatAge(w.seconds)} (limit ${(maxRatio * 100).toFixed(0)}%)`,
      );
    }
  }
  if (w && backlog > t.backlog.minJobs && w.rates.added > w.rates.completed + w.rates.failed) {
    add(
      'backlog_growing',
      `${backlog} jobs waiting and more arriving (${w.rates.added.toFixed(2)}/s) than finishing (${(w.rates.completed + w.rates.failed).toFixed(2)}/s)`,
    );
  }
  if (w && w.rates.stalled * w.seconds > t.stalls.maxStalls) {
    add('jobs_stalling', `${Math.round(w.rates.stalled * w.seconds)} job(s) stalled in the last ${formatAge(w.seconds)}`);
  }
  if (q.orphanedActive > 0) {
    add('orphaned_active', `${q.orphanedActive} active job(s) whose worker lock expired and that nobody reclaims`);
  }
  if (deadLetteredLast15m !== null && deadLetteredLast15m > t.dlqGrowing.maxAdded) {
    add('dead_letters_growing', `${deadLetteredLast15m} job(s) dead-lettered in the last 15 min; ${deadLetterJobs} in ${q.ref.name}-dlq`);
  } else if (deadLetterJobs > 0) {
    add('dead_letters', `${deadLetterJobs} job(s) in ${q.ref.name}-dlq`);
  }
  return informational(q, add, reasons);
}

/** The reasons that page nobody, then the verdict over every reason. */
function informational(q: QueueState, add: (code: ReasonCode, message: string) => void, reasons: HealthReason[]): QueueHealthView {
  const backlog = backlogOf(q);
  if (q.paused) add('paused', backlog > 0 ? `paused with ${backlog} job(s) waiting` : 'paused');
  if (q.rateLimited) add('rate_limited', 'rate limited right now');
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
