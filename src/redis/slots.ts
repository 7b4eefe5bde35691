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

/**
 * The hash tag every key under `prefix` takes from the prefix itself (Redis hashes only the text between the
 * first `{` and the next `}` when it is not empty), or undefined when the prefix carries none.
 */
export function prefixHashTag(prefix: string): string | undefined {
  const open = prefix.indexOf('{');
  if (open < 0) return undefined;
  const close = prefix.indexOf('}', open + 1);
  return close > open + 1 ? prefix.slice(open + 1, close) : undefined;
}

/**
 * Why BullMQ queues under `prefix` cannot run on a Redis Cluster, or undefined when they can. Our queue names
 * (email, webhook, export, their -dlq) carry no hash tag, so the prefix has to: BullMQ's scripts touch every
 * key of a queue, and keys in different slots fail with CROSSSLOT.
 */
export function clusterPrefixProblem(prefix: string): string | undefined {
  if (prefixHashTag(prefix) !== undefined) return undefined;
  const example = /[{}]/.test(prefix) ? '{bull}' : `{${prefix}}`;
  return `on a Redis Cluster the prefix needs a hash tag, e.g. ${example}, so that every key of a queue lands in one slot; without one BullMQ's scripts fail with CROSSSLOT errors. Producers, workers and the sidecar must all use the same prefix`;
}

/** For library callers (Producer, workers) given cluster nodes: refuses a prefix BullMQ could not run on. */
export function assertClusterPrefix(prefix: string): void {
  const problem = clusterPrefixProblem(prefix);
  if (problem) throw new Error(`BullMQ prefix ${JSON.stringify(prefix)}: ${problem}`);
}
