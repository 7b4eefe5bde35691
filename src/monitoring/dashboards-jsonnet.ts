// Turns the dashboards that dashboards.ts builds into jsonnet functions of the mixin's `_config`, so the mixin
// renders them for any config while the Grafana Foundation SDK code stays their one definition. The builders
// run once on settings whose every value is a marker (@@path@@); each marker in the output becomes a reference
// to that path of the config. Two kinds of values need more than a reference:
// - a config string inside a PromQL string literal is written with promString(), whose marker (@@q:path@@)
//   renders std.escapeStringJson(c.path): a quote or backslash in the value stays inside the literal;
// - the deployment labels are a list of any length: markedSettings() makes it the one label @@^@@, and
//   eachDeploymentLabel() wraps what the builders write per label in @@[@@…@@]@@, which renders as a jsonnet
//   comprehension over c.deploymentLabels (an array element naming @@^@@, a template variable, likewise).
import type { MonitoringSettings } from '../thresholds/monitoring-settings.js';

const LABEL = '@@^@@';
const TOKEN = /@@(\[|\]|\^|q:[A-Za-z0-9_.]+|[A-Za-z0-9_.]+)@@/g;

/** The same shape as `s`, every leaf replaced by the marker of its path, the deployment labels by one label marker. */
export function markedSettings(s: MonitoringSettings): MonitoringSettings {
  const mark = (v: unknown, path: string[]): unknown => {
    if (path.length === 1 && path[0] === 'deploymentLabels') return [LABEL];
    if (Array.isArray(v)) return v.map((x, i) => mark(x, [...path, String(i)]));
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mark(x, [...path, k])]));
    return `@@${path.join('.')}@@`;
  };
  return mark(s, []) as MonitoringSettings;
}

/** A PromQL double-quoted string holding `value` (JSON's escapes are a subset of PromQL's Go-style ones). */
export function promString(value: string): string {
  const m = /^@@([A-Za-z0-9_.]+)@@$/.exec(value);
  return m ? `@@q:${m[1]}@@` : JSON.stringify(value);
}

/** `fragment(label)` for each deployment label, concatenated (give each fragment its own trailing separator). */
export function eachDeploymentLabel(labels: readonly string[], fragment: (label: string) => string): string {
  if (labels.length === 1 && labels[0] === LABEL) return `@@[@@${fragment(LABEL)}@@]@@`;
  return labels.map(fragment).join('');
}

const ref = (path: string): string =>
  `c${path
    .split('.')
    .map((k) => (/^\d+$/.test(k) ? `[${k}]` : /^[A-Za-z_]\w*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`))
    .join('')}`;

/** The jsonnet expression of a string holding markers. */
function stringExpr(v: string): string {
  type Part = { code: string; text: boolean };
  const stack: Part[][] = [[]];
  let last = 0;
  const text = (t: string): void => {
    if (t !== '') stack.at(-1)!.push({ code: JSON.stringify(t), text: true });
  };
  const join = (parts: Part[]): string =>
    parts.length === 1 ? parts[0]!.code : `std.join('', [${parts.map((p) => (p.text ? p.code : `std.toString(${p.code})`)).join(', ')}])`;
  for (const m of v.matchAll(TOKEN)) {
    text(v.slice(last, m.index));
    last = m.index! + m[0].length;
    const t = m[1]!;
    if (t === '[') stack.push([]);
    else if (t === ']') {
      const inner = stack.pop()!;
      stack.at(-1)!.push({ code: `std.join('', [${inner.length === 0 ? "''" : join(inner)} for l in c.deploymentLabels])`, text: true });
    } else if (t === '^') stack.at(-1)!.push({ code: 'l', text: true });
    else if (t.startsWith('q:')) stack.at(-1)!.push({ code: `std.escapeStringJson(${ref(t.slice(2))})`, text: true });
    else stack.at(-1)!.push({ code: ref(t), text: false });
  }
  text(v.slice(last));
  const parts = stack[0]!;
  if (parts.length === 0) return '""';
  // A whole-string marker keeps the config value's type (thresholds are numbers); a marker inside text joins it.
  return join(parts);
}

function expr(v: unknown, indent: string): string {
  if (typeof v === 'string') return stringExpr(v);
  const inner = `${indent}  `;
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    // Runs of plain elements, and each element built per deployment label as a comprehension over them.
    const chunks: string[] = [];
    let run: string[] = [];
    const flush = (): void => {
      if (run.length > 0) chunks.push(`[\n${run.join(',\n')},\n${indent}]`);
      run = [];
    };
    for (const x of v) {
      const perLabel = JSON.stringify(x).includes(LABEL) && !JSON.stringify(x).includes('@@[@@');
      if (!perLabel) {
        run.push(inner + expr(x, inner));
        continue;
      }
      flush();
      chunks.push(`[\n${inner}${expr(x, inner)}\n${indent}  for l in c.deploymentLabels\n${indent}]`);
    }
    flush();
    return chunks.join(' + ');
  }
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    return entries.length === 0 ? '{}' : `{\n${entries.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${expr(x, inner)}`).join(',\n')},\n${indent}}`;
  }
  return JSON.stringify(v);
}

/** A libsonnet file holding `function(c) <dashboard>`, with the markers of `marked` turned into `c` paths. */
export function dashboardLibsonnet(marked: unknown): string {
  return [
    '// Generated by `npm run gen:monitoring` from src/monitoring/dashboards.ts: edit that file, not this one.',
    "// A function of the mixin's _config (config.libsonnet).",
    `function(c) ${expr(JSON.parse(JSON.stringify(marked)), '')}`,
    '',
  ].join('\n');
}
