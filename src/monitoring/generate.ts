// `npm run generate:monitoring`: writes the rule file and dashboards rendered from settings.ts. The files are
// committed; test/monitoring-generated.test.ts fails when they differ from what this would write.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildRuleGroups, renderRulesYaml } from './alert-rules.js';
import { buildDashboards } from './dashboards.js';
import { settings, type MonitoringSettings } from './settings.js';

/** Repository-relative path -> file content. */
export function renderMonitoringFiles(s: MonitoringSettings = settings): Record<string, string> {
  const files: Record<string, string> = { 'alerts/queuelens.rules.yml': renderRulesYaml(buildRuleGroups(s)) };
  for (const [name, dashboard] of Object.entries(buildDashboards(s))) {
    files[`dashboards/${name}`] = `${JSON.stringify(dashboard, null, 2)}\n`;
  }
  return files;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  for (const [path, content] of Object.entries(renderMonitoringFiles())) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
    process.stdout.write(`wrote ${path}\n`);
  }
}
