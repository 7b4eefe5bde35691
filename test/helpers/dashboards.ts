// Reads the committed Grafana dashboards and their panel queries, and substitutes the dashboard variables the
// way Grafana would, so static tests and end-to-end tests (queries against a real Prometheus) read the same list.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface Panel {
  id?: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Array<{ expr?: string; datasource?: { uid?: string } }>;
  panels?: Panel[];
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: unknown; multi?: boolean; includeAll?: boolean; allValue?: string }> };
}

export function loadDashboards(): Array<{ file: string; dashboard: Dashboard }> {
  return readdirSync(join(root, 'dashboards'))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, dashboard: JSON.parse(readFileSync(join(root, 'dashboards', file), 'utf8')) as Dashboard }));
}

export function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

export function panelQueries(d: Dashboard): Array<{ panel: string; expr: string }> {
  return allPanels(d).flatMap((p) => (p.targets ?? []).flatMap((t) => (t.expr ? [{ panel: p.title, expr: t.expr }] : [])));
}

/**
 * Substitutes `$name`/`${name}` variables as Grafana does for a regex matcher, and the interval macros.
 * Multi-value variables become an alternation; omit one to get Grafana's "All" (`.*`).
 */
export function substituteVariables(expr: string, vars: Record<string, string[]> = {}, rateInterval = '5m'): string {
  return expr
    .replace(/\$__(rate_interval|interval|range)\b/g, rateInterval)
    .replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string | undefined, b: string | undefined) => {
      const values = vars[(a ?? b)!];
      return values ? values.join('|') : '.*';
    });
}
