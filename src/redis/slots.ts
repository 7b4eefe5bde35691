// Redis Cluster slot arithmetic: which keys may go together in one multi-key command or Lua call.
import calculateSlot from 'cluster-key-slot';

export function keySlot(key: string): number {
  return calculateSlot(key);
}

/** Splits items into groups of at most `size` whose keys share a slot (standalone: slot is ignored). */
export function groupBySlot<T>(items: readonly T[], keyOf: (item: T) => string, size: number, cluster: boolean): T[][] {
  if (!cluster) {
    const groups: T[][] = [];
    for (let i = 0; i < items.length; i += size) groups.push(items.slice(i, i + size));
    return groups;
  }
  const bySlot = new Map<number, T[]>();
  for (const item of items) {
    const slot = keySlot(keyOf(item));
    const list = bySlot.get(slot) ?? [];
    list.push(item);
    bySlot.set(slot, list);
  }
  return [...bySlot.values()].flatMap((list) => groupBySlot(list, keyOf, size, false));
}
