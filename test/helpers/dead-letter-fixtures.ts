// Dead letters as queuelens writes them, made in bulk for tests of large selections (on either store).
import type { DeadLetterRecord } from '../../src/dead-letters/dead-letter-record.js';

/** `n` webhook dead letters under `prefix` (the schema on PostgreSQL) posting to `url`, ids `bulk-<i>-1`. */
export function bulkWebhookDeadLetters(prefix: string, url: string, n: number): Array<{ name: string; data: DeadLetterRecord; opts: { jobId: string } }> {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({
    name: 'webhook',
    data: {
      source: { prefix, queue: 'webhook', jobId: `bulk-${i}`, name: 'webhook' },
      data: { url, event: 'bulk', payload: i },
      opts: { attempts: 1 },
      failedReason: 'x',
      stacktrace: [],
      attemptsMade: 1,
      firstFailedAt: now,
      lastFailedAt: now,
      deadLetteredAt: now,
    },
    opts: { jobId: `bulk-${i}-1` },
  }));
}
