// Decides /health and /readyz from the last collection: ready when the store (Redis or PostgreSQL) answers and the last collection is
// fresh; /health may also turn "degraded" on per-queue thresholds, which are off unless configured.
import { collectionAgeSeconds, isStale, staleLimitSeconds } from '../collector/freshness.js';
import { backlogOf, type CollectionSnapshot } from '../domain/queue-snapshot.js';

export interface HealthThresholds {
  maxWaiting?: number;
  maxOldestAgeSeconds?: number;
  minWorkers?: number;
}

export interface HealthOptions extends HealthThresholds {
  /** The store the reasons name: 'Redis' (default) or 'PostgreSQL'. */
  store?: string;
}

export interface HealthReport {
  status: 'ok' | 'unavailable' | 'degraded';
  reasons: string[];
  lastCollectAgeSeconds: number | null;
  queues: number;
  /** Queues that break a threshold, with what they broke. */
  degradedQueues?: Array<{ prefix: string; queue: string; problems: string[] }>;
}

export function assessHealth(s: CollectionSnapshot | undefined, now: number, collectIntervalSeconds: number, thresholds: HealthOptions = {}): HealthReport {
  const reasons: string[] = [];
  const age = collectionAgeSeconds(s, now);
  if (!s) reasons.push('no collection has run yet');
  else {
    if (!s.redisUp) reasons.push(`${thresholds.store ?? 'Redis'} connection is down`);
    if (!s.ok && s.error) reasons.push(`last collection failed: ${s.error}`);
    if (age === null) reasons.push('no collection has succeeded yet');
    else if (isStale(s, now, collectIntervalSeconds))
      reasons.push(`last successful collection is ${age.toFixed(1)} s old (limit ${staleLimitSeconds(collectIntervalSeconds)} s)`);
  }
  const queues = s?.queues.length ?? 0;
  if (reasons.length > 0) return { status: 'unavailable', reasons, lastCollectAgeSeconds: age, queues };

  const degradedQueues: NonNullable<HealthReport['degradedQueues']> = [];
  for (const q of s!.queues) {
    // Dead letters wait for a human on purpose, and a paused queue's backlog, age and missing workers are the
    // plan: the same definitions as the status verdict and the alert rules.
    if (q.dlqOf !== undefined || q.paused) continue;
    const problems: string[] = [];
    const waiting = backlogOf(q);
    if (thresholds.maxWaiting !== undefined && waiting > thresholds.maxWaiting) problems.push(`${waiting} jobs waiting > ${thresholds.maxWaiting}`);
    if (thresholds.maxOldestAgeSeconds !== undefined && q.oldestWaitingAgeSeconds > thresholds.maxOldestAgeSeconds) {
      problems.push(`oldest waiting job ${q.oldestWaitingAgeSeconds.toFixed(1)} s > ${thresholds.maxOldestAgeSeconds} s`);
    }
    if (thresholds.minWorkers !== undefined && q.workers !== undefined && q.workers < thresholds.minWorkers) {
      problems.push(`${q.workers} workers < ${thresholds.minWorkers}`);
    }
    if (problems.length > 0) degradedQueues.push({ prefix: q.ref.prefix, queue: q.ref.name, problems });
  }
  if (degradedQueues.length > 0) {
    return { status: 'degraded', reasons: [`${degradedQueues.length} queue(s) over threshold`], lastCollectAgeSeconds: age, queues, degradedQueues };
  }
  return { status: 'ok', reasons: [], lastCollectAgeSeconds: age, queues };
}
