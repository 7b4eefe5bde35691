// Seeds many BullMQ queues fast by writing, with pipelined raw commands, the keys BullMQ 6.7 itself writes
// (storeJob.lua, getPriorityScore.lua, getDelayedScore.lua, prepareJobForProcessing.lua, moveToFinished).
// Going through Queue.add() would take minutes for 10,000 queues; the bench checks a sample with BullMQ's
// own getJobCounts() so the shortcut cannot drift from what BullMQ reads.
import type { Redis } from 'ioredis';
import type { JobState } from '../../src/domain/queue-snapshot.js';
import { jobKey, jobLockKey, queueKey } from '../../src/redis/keys.js';
import { type QueueRef } from '../../src/domain/queue-ref.js';

const HOUR = 3_600_000;
/** Long enough that no lock of a "live" active job expires during a bench run. */
const LOCK_MS = 2 * HOUR;
const QUEUES_PER_PIPELINE = 200;

/** What one seeded queue holds, the ground truth the bench checks the collector and BullMQ against. */
export interface SeededQueue {
  ref: QueueRef;
  jobs: Record<JobState, number>;
  paused: boolean;
  delayedOverdue: number;
  orphanedActive: number;
  /** Eligible time (ms) of the next job to run: the right end of `wait`. */
  headEligibleMs: number;
  oldestActiveStartMs: number;
}

export function queueName(i: number): string {
  return `q${String(i).padStart(5, '0')}`;
}

/**
 * The layout of queue number i, seeded at `now`: 4 waiting, 2 prioritized, 3 delayed (1 overdue), 3 completed,
 * 2 failed, 1 active with a live lock; every 10th queue also has an active job whose lock is gone (a dead
 * worker), every 50th is paused.
 */
export function expectedQueue(prefix: string, i: number, now: number): SeededQueue {
  const orphan = i % 10 === 0;
  return {
    ref: { prefix, name: queueName(i) },
    jobs: { waiting: 4, prioritized: 2, delayed: 3, active: orphan ? 2 : 1, waiting_children: 0, completed: 3, failed: 2 },
    paused: i % 50 === 0,
    delayedOverdue: 1,
    orphanedActive: orphan ? 1 : 0,
    headEligibleMs: now - 60_000,
    oldestActiveStartMs: now - 5_000,
  };
}

type Pipe = ReturnType<Redis['pipeline']>;

function job(pipe: Pipe, q: QueueRef, id: number, fields: Record<string, string | number>, opts: Record<string, unknown> = {}): void {
  pipe.hset(jobKey(q, String(id)), {
    name: 'bench',
    data: `{"n":${id}}`,
    opts: JSON.stringify({ attempts: 0, ...opts }),
    delay: Number(opts['delay'] ?? 0),
    priority: Number(opts['priority'] ?? 0),
    ...fields,
  });
}

function seedQueue(pipe: Pipe, prefix: string, i: number, now: number): void {
  const e = expectedQueue(prefix, i, now);
  const q = e.ref;
  pipe.hset(queueKey(q, 'meta'), { 'opts.maxLenEvents': 10_000, version: 'bullmq:6.7.0', ...(e.paused ? { paused: 1 } : {}) });

  // wait: LPUSHed in enqueue order, so the right end (next to run) is job 1, the oldest.
  for (let id = 1; id <= 4; id += 1) job(pipe, q, id, { timestamp: now - 60_000 + (id - 1) * 1000 });
  pipe.lpush(queueKey(q, 'wait'), '1', '2', '3', '4');

  // prioritized: score = priority * 2^32 + (INCR pc).
  for (const id of [5, 6]) job(pipe, q, id, { timestamp: now - 10_000 }, { priority: 3 });
  pipe.zadd(queueKey(q, 'prioritized'), 3 * 2 ** 32 + 1, '5', 3 * 2 ** 32 + 2, '6');
  pipe.set(queueKey(q, 'pc'), '2');

  // delayed: score = dueMs * 4096 + seq; job 7 was due 30 s ago and no worker promoted it.
  const due = [now - 30_000, now + HOUR, now + 2 * HOUR];
  for (const [n, id] of [7, 8, 9].entries()) job(pipe, q, id, { timestamp: now - 60_000 }, { delay: due[n]! - (now - 60_000) });
  pipe.zadd(queueKey(q, 'delayed'), due[0]! * 4096, '7', due[1]! * 4096, '8', due[2]! * 4096, '9');

  // completed / failed: score = finishedOn.
  const finished = now - 20_000;
  for (const id of [10, 11, 12])
    job(pipe, q, id, { timestamp: now - 30_000, processedOn: finished - 10, finishedOn: finished, ats: 1, atm: 1, returnvalue: '{"ok":true}' });
  pipe.zadd(queueKey(q, 'completed'), finished, '10', finished, '11', finished, '12');
  for (const id of [13, 14])
    job(pipe, q, id, {
      timestamp: now - 30_000,
      processedOn: finished - 10,
      finishedOn: finished,
      ats: 1,
      atm: 1,
      failedReason: 'boom',
      stacktrace: '["Error: boom"]',
    });
  pipe.zadd(queueKey(q, 'failed'), finished, '13', finished, '14');

  // active: LPUSHed when taken, so the right end is the longest-running; a live worker holds `<id>:lock`.
  job(pipe, q, 15, { timestamp: now - 6_000, processedOn: e.oldestActiveStartMs, ats: 1 });
  pipe.set(jobLockKey(q, '15'), `bench-worker:${i}`, 'PX', LOCK_MS);
  if (e.orphanedActive > 0) {
    job(pipe, q, 16, { timestamp: now - 4_000, processedOn: now - 3_000, ats: 1 });
    pipe.lpush(queueKey(q, 'active'), '15', '16');
  } else {
    pipe.lpush(queueKey(q, 'active'), '15');
  }
  pipe.set(queueKey(q, 'id'), '16');
}

/** Writes `count` queues under `prefix` and returns their ground truth. */
export async function seedQueues(redis: Redis, prefix: string, count: number, now: number): Promise<SeededQueue[]> {
  for (let start = 0; start < count; start += QUEUES_PER_PIPELINE) {
    const pipe = redis.pipeline();
    for (let i = start; i < Math.min(start + QUEUES_PER_PIPELINE, count); i += 1) seedQueue(pipe, prefix, i, now);
    for (const [err] of (await pipe.exec()) ?? []) if (err) throw err;
  }
  return Array.from({ length: count }, (_, i) => expectedQueue(prefix, i, now));
}
