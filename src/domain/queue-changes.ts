// Owns what the event reader tells the collection about change: which queues it follows (every change of theirs
// reaches it as a stream entry) and which of them moved since a consumer last asked. Plain data shared in one
// process: events/ marks, collector/ and the accounting read-back take. A queue not followed here has no change
// information at all, and is read at every collection as before.
import { queueId, type QueueRef } from './queue-ref.js';

/**
 * `state`: a queue's keys changed (its stream got entries): its counts need a new look.
 * `accounting`: its persisted event accounting was written: the read-back needs a new look.
 */
export type ChangeKind = 'state' | 'accounting';

export class QueueChanges {
  private readonly followed = new Map<string, QueueRef>();
  private readonly dirty: Record<ChangeKind, Set<string>> = { state: new Set(), accounting: new Set() };
  private listeners: Array<() => void> = [];
  private whole = false;
  private epochValue = 0;

  /**
   * The reader starts following queues from their committed cursor: what happened before it may be unseen, so each
   * is marked changed (a consumer takes a new look after this, and every later change reaches the reader).
   */
  follow(queues: readonly QueueRef[]): void {
    for (const q of queues) this.followed.set(queueId(q), q);
    this.mark(queues, ['state', 'accounting']);
  }

  /** The reader stopped following these queues (lost the lease, a failed read, the queue gone). */
  unfollow(queues: readonly QueueRef[]): void {
    for (const q of queues) this.followed.delete(queueId(q));
    this.epochValue += 1;
  }

  isFollowed(id: string): boolean {
    return this.followed.has(id);
  }

  /**
   * This process writes every queue's accounting (it holds every shard's lease). Each flip starts a new epoch: a
   * consumer's copies from an earlier epoch may be stale.
   */
  setWhole(whole: boolean): void {
    if (whole === this.whole) return;
    this.whole = whole;
    this.epochValue += 1;
  }

  get isWhole(): boolean {
    return this.whole;
  }

  /** Bumped whenever something this object vouched for may have changed unseen (see setWhole, unfollow). */
  get epoch(): number {
    return this.epochValue;
  }

  mark(queues: Iterable<QueueRef>, kinds: readonly ChangeKind[]): void {
    let any = false;
    for (const q of queues) {
      const id = queueId(q);
      for (const k of kinds) this.dirty[k].add(id);
      any = true;
    }
    if (any && kinds.includes('state')) for (const l of this.listeners) l();
  }

  /** The queues marked `kind` since the last take (queueId). */
  take(kind: ChangeKind): Set<string> {
    const out = this.dirty[kind];
    this.dirty[kind] = new Set();
    return out;
  }

  /** Called (synchronously, so keep it cheap) whenever queues are marked with a state change. */
  onStateChange(listener: () => void): () => void {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }
}
