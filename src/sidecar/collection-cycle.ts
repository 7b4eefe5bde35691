// Owns one collection cycle, the same in the sidecar and in `queuelens top` reading Redis directly: collect,
// hand the snapshot on (the sidecar renders its gauges and follows new queues there), read the persisted event
// accounting back, and update the queue board behind /api/queues, the status page and `top`.
import type { SnapshotSource } from '../domain/backend.js';
import type { CollectionSnapshot } from '../domain/queue-snapshot.js';
import type { QueueEventAccounting } from '../domain/event-accounting.js';
import { boardAccounting } from '../status/event-accounting.js';
import type { QueueBoard } from '../status/queue-board.js';

export interface CollectionCycleOptions {
  /** The backend's snapshots (collector/collector.ts on Redis). */
  collector: SnapshotSource;
  board: QueueBoard;
  /** The event accounting persisted in Redis; undefined when events are off or it cannot be read. */
  readAccounting: (s: CollectionSnapshot) => Promise<readonly QueueEventAccounting[] | undefined>;
  /** Called with each snapshot before the accounting is read. */
  onSnapshot?: (s: CollectionSnapshot) => Promise<void>;
  /** Read every queue now (an explicit refresh), whatever a change-driven collector would keep. */
  full?: boolean;
}

export interface CycleResult {
  snapshot: CollectionSnapshot;
  accounting: readonly QueueEventAccounting[] | undefined;
}

export async function runCollectionCycle(o: CollectionCycleOptions): Promise<CycleResult> {
  const snapshot = await o.collector.collect({ full: o.full });
  await o.onSnapshot?.(snapshot);
  const accounting = await o.readAccounting(snapshot);
  await o.board.update(snapshot, accounting && boardAccounting(accounting));
  return { snapshot, accounting };
}
