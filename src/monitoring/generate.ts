// `npm run gen:monitoring`: writes the rule file (and its PrometheusRule twin in deploy/k8s/), the
// dashboards and the alert table of docs/monitoring.md, all rendered from settings.ts. The files are committed;
// test/monitoring-generated.test.ts fails when they differ from what this would write.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildRuleGroups, renderPrometheusRule, renderRulesYaml } from './alert-rules.js';
import { renderAlertTable, spliceAlertTable } from './alert-table.js';
import { buildDashboards } from './dashboards.js';
import { settings, type MonitoringSettings } from './settings.js';

/** The repository root, from src/monitoring or dist/monitoring alike. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Repository-relative path -> file content. */
export function renderMonitoringFiles(s: MonitoringSettings = settings): Record<string, string> {
  const groups = buildRuleGroups(s);
  const files: Record<string, string> = {
    'alerts/queuelens.rules.yml': renderRulesYaml(groups),
    'deploy/k8s/prometheusrule.yaml': renderPrometheusRule(groups, s.exporterJob),
  };
  for (const [name, dashboard] of Object.entries(buildDashboards(s))) {
    files[`dashboards/${name}`] = `${JSON.stringify(dashboard, null, 2)}\n`;
  }
  const doc = 'docs/monitoring.md';
  files[doc] = spliceAlertTable(readFileSync(join(repoRoot, doc), 'utf8'), renderAlertTable(s));
  return files;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [path, content] of Object.entries(renderMonitoringFiles())) {
    mkdirSync(dirname(join(repoRoot, path)), { recursive: true });
    writeFileSync(join(repoRoot, path), content);
    process.stdout.write(`wrote ${path}\n`);
  }
}
