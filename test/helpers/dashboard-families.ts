// The metric families the bundled dashboards read, directly or through the recording rules in alerts/:
// what an end-to-end run must show data for.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { loadDashboards, panelQueries, substituteVariables } from './dashboards.js';
import { analysePromQL } from './promql.js';

/** Family names as the sidecar exposes them (histograms without _bucket/_sum/_count); Prometheus's own `up` left out. */
export function dashboardMetricFamilies(): string[] {
  const rules = parseYaml(readFileSync(new URL('../../alerts/queuelens.rules.yml', import.meta.url), 'utf8')) as {
    groups: Array<{ rules: Array<{ record?: string; expr: string }> }>;
  };
  const recorded = new Map<string, string>();
  for (const g of rules.groups) for (const r of g.rules) if (r.record) recorded.set(r.record, r.expr);
  const families = new Set<string>();
  const seen = new Set<string>();
  const visit = (expr: string): void => {
    for (const sel of analysePromQL(expr).selectors) {
      const name = sel.name;
      if (!name || seen.has(name)) continue;
      seen.add(name);
      if (recorded.has(name)) visit(recorded.get(name)!);
      else if (name !== 'up') families.add(name.replace(/_(bucket|sum|count)$/, ''));
    }
  };
  for (const { dashboard } of loadDashboards()) for (const q of panelQueries(dashboard)) visit(substituteVariables(q.expr));
  return [...families].sort();
}
