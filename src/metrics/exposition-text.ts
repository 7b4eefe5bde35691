// Writes metrics as exposition text directly, for series that are rebuilt wholesale every collection.
// Escaping as prom-client does it, so the output does not depend on which of the two rendered a metric.
import type { MetricDef } from './definitions.js';

/** HELP and TYPE lines. OpenMetrics names a counter family without its `_total` suffix; the samples keep it. */
export function header(def: MetricDef, openMetrics = false): string {
  const name = openMetrics && def.type === 'counter' ? def.name.replace(/_total$/, '') : def.name;
  return `# HELP ${name} ${escapeHelp(def.help)}\n# TYPE ${name} ${def.type}\n`;
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function escapeLabel(s: string): string {
  return /[\\\n"]/.test(s) ? escapeHelp(s).replace(/"/g, '\\"') : s;
}

export function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return String(v);
}
