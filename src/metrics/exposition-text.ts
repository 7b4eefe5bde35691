// Writes metrics as exposition text directly, for series that are rebuilt wholesale every collection.
// Escaping as prom-client does it, so the output does not depend on which of the two rendered a metric.
import type { MetricDef } from './definitions.js';

/** HELP and TYPE lines. OpenMetrics names a counter family without its `_total` suffix; the samples keep it. */
export function header(def: Pick<MetricDef, 'name' | 'help' | 'type'>, openMetrics = false): string {
  const name = openMetrics && def.type === 'counter' ? def.name.replace(/_total$/, '') : def.name;
  return `# HELP ${name} ${escapeHelp(def.help)}\n# TYPE ${name} ${def.type}\n`;
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function escapeLabel(s: string): string {
  return /[\\\n"]/.test(s) ? escapeHelp(s).replace(/"/g, '\\"') : s;
}

/**
 * `name="value",…` with the label names of a MetricDef (or the leading part of them) and the values in the same
 * order, escaped, as prom-client's `labels(...values)`: the names come from the definition only, so the text
 * cannot carry a label the definition (and docs/metrics.md) does not. An undefined or empty value leaves its
 * label out (job_name without --job-name-label); more values than names is an error.
 */
export function renderLabels(names: readonly string[], values: ReadonlyArray<string | undefined>): string {
  if (values.length > names.length) throw new Error(`${values.length} label values for ${names.length} labels (${names.join(',')})`);
  let out = '';
  for (let i = 0; i < values.length; i += 1) {
    const v = values[i];
    if (v === undefined || v === '') continue;
    out += `${out === '' ? '' : ','}${names[i]!}="${escapeLabel(v)}"`;
  }
  return out;
}

/**
 * For metrics whose labels start with the same `shared` names (a queue's prefix and queue), rendered once per
 * queue: the one label each def adds after them (e.g. state, outcome), from the def. Throws at load when a def's
 * labels do not start with `shared` or add more than one.
 */
export function labelAfter(def: MetricDef, shared: readonly string[]): string {
  const name = def.labels[shared.length];
  if (name === undefined || def.labels.length !== shared.length + 1 || shared.some((s, i) => def.labels[i] !== s)) {
    throw new Error(`${def.name}: labels ${def.labels.join(',')} are not ${shared.join(',')} plus one`);
  }
  return name;
}

/** Throws at load when a def rendered with a shared label set has other labels. */
export function sameLabels(defs: readonly MetricDef[], labels: readonly string[]): void {
  for (const def of defs) if (def.labels.join() !== labels.join()) throw new Error(`${def.name}: labels ${def.labels.join(',')} are not ${labels.join(',')}`);
}

export function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return String(v);
}

/** The label pairs renderLabels writes, unescaped, for the protobuf exposition: the same names, the same omissions. */
export function labelPairs(names: readonly string[], values: ReadonlyArray<string | undefined>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < values.length; i += 1) {
    const v = values[i];
    if (v !== undefined && v !== '') out.push([names[i]!, v]);
  }
  return out;
}
