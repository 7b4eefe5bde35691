// The monitoring mixin (mixin/) is the way Prometheus users install queuelens's rules and dashboards. Rendered by
// the real `jsonnet` with its default config it is exactly the committed alerts/ and dashboards/; rendered with
// an overridden config it is still a rule file promtool accepts, and the overrides land where they should.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { allPanels, panelQueries, substituteVariables, type Dashboard } from './helpers/dashboards.js';
import { requireBinary, run } from './helpers/prometheus-binaries.js';
import { analysePromQL } from './helpers/promql.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'queuelens-mixin-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function jsonnet(file: string, config?: unknown): unknown {
  const bin = requireBinary('jsonnet');
  const args = ['-J', 'mixin', ...(config === undefined ? [] : ['--tla-code', `config=${JSON.stringify(config)}`]), file];
  const r = run(bin, args, root);
  expect(r.status, r.output).toBe(0);
  return JSON.parse(r.output);
}

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
type RuleFile = { groups: Array<{ name: string; rules: Rule[] }> };

describe('default config', () => {
  test('mixin/rules.jsonnet renders exactly alerts/queuelens.rules.yml', () => {
    const committed = parse(readFileSync(join(root, 'alerts/queuelens.rules.yml'), 'utf8')) as RuleFile;
    const rendered = jsonnet('mixin/rules.jsonnet') as RuleFile;
    expect(rendered).toEqual(committed);
    expect(rendered.groups.flatMap((g) => g.rules).length).toBeGreaterThan(50);
  });

  test('mixin/dashboards.jsonnet renders exactly the files of dashboards/', () => {
    const rendered = jsonnet('mixin/dashboards.jsonnet') as Record<string, unknown>;
    const committed = readdirSync(join(root, 'dashboards')).filter((f) => f.endsWith('.json'));
    expect(Object.keys(rendered).sort()).toEqual(committed.sort());
    for (const name of committed) expect(rendered[name], name).toEqual(JSON.parse(readFileSync(join(root, 'dashboards', name), 'utf8')));
  });

  test('prometheusRules and prometheusAlerts split the same groups the way mixin tools expect', () => {
    const bin = requireBinary('jsonnet');
    const r = run(bin, ['-J', 'mixin', '-e', "local m = import 'mixin.libsonnet'; { rules: m.prometheusRules, alerts: m.prometheusAlerts }"], root);
    expect(r.status, r.output).toBe(0);
    const { rules, alerts } = JSON.parse(r.output) as { rules: RuleFile; alerts: RuleFile };
    expect(rules.groups.flatMap((g) => g.rules).every((x) => x.record)).toBe(true);
    expect(alerts.groups.flatMap((g) => g.rules).every((x) => x.alert)).toBe(true);
    const all = jsonnet('mixin/rules.jsonnet') as RuleFile;
    expect([...rules.groups, ...alerts.groups].map((g) => g.name).sort()).toEqual(all.groups.map((g) => g.name).sort());
  });
});

describe('an overridden config', () => {
  const config = {
    exporterJob: 'bullmq-exporter',
    ignoredQueues: '.+-(dlq|archive)',
    links: { runbookBaseUrl: 'https://wiki.example.com/queuelens', grafanaUrl: 'https://grafana.example.com' },
    dashboardWindow: '10m',
    defaults: { oldestJob: { maxAgeSeconds: 120, for: '2m' } },
    overrides: { 'billing.v2': { oldestJob: { maxAgeSeconds: 30 }, failureRate: { maxRatio: 0.01 } } },
  };
  const rendered = jsonnet('mixin/rules.jsonnet', config) as RuleFile;
  const rules = rendered.groups.flatMap((g) => g.rules);
  const alerts = rules.filter((r) => r.alert);

  test('promtool checks the rendered rule file clean', () => {
    const promtool = requireBinary('promtool');
    const file = join(tmp, 'override.rules.yml');
    writeFileSync(file, JSON.stringify(rendered));
    const r = run(promtool, ['check', 'rules', file], root);
    expect(r.status, r.output).toBe(0);
    expect(r.output).toContain('SUCCESS');
    expect(r.output).toContain(`${rules.length} rules found`);
  });

  test('selectors, thresholds per queue, windows and link bases follow the config', () => {
    const exporter = alerts.filter((a) => a.alert === 'BullMQRedisDown');
    expect(exporter[0]!.expr).toContain('job="bullmq-exporter"');
    expect(rules.some((r) => r.expr.includes('job="queuelens"'))).toBe(false);
    const oldest = alerts.filter((a) => a.alert === 'BullMQOldestJobTooOld');
    // default, billing.v2, and export (the shipped override, kept: mergePatch merges objects)
    expect(oldest.map((a) => a.labels!.thresholds)).toEqual(['default', 'billing.v2', 'export']);
    expect(oldest[0]!.expr).toMatch(/queue!~"\.\+-\(dlq\|archive\)".*> 120\n/);
    expect(oldest[1]!.expr).toMatch(/queue=~"billing\\\\\.v2"\}\) > 30\n/);
    const failing = alerts.filter((a) => a.alert === 'BullMQHighFailureRate');
    expect(failing.find((a) => a.labels!.thresholds === 'billing.v2')!.expr).toContain('> 0.01\n');
    expect(rules.some((r) => r.record === 'prefix_queue:bullmq_jobs_added:rate10m')).toBe(true);
    for (const a of alerts) expect(a.annotations!.runbook_url).toBe(`https://wiki.example.com/queuelens/${a.alert}.md`);
    for (const a of alerts) expect(a.annotations!.dashboard_url!.startsWith('https://grafana.example.com/d/')).toBe(true);
  });

  test('the dashboards follow the same config', () => {
    const dashboards = JSON.stringify(jsonnet('mixin/dashboards.jsonnet', config));
    expect(dashboards).toContain('job=\\"bullmq-exporter\\"');
    expect(dashboards).toContain(':rate10m{');
    expect(dashboards).not.toContain(':rate5m{');
    expect(dashboards).toContain('/^(?!.+-(dlq|archive)$).*$/');
  });
});

describe('deployment labels: two of them', () => {
  const labels = ['cluster', 'namespace'];
  const dashboards = Object.values(jsonnet('mixin/dashboards.jsonnet', { deploymentLabels: labels }) as Record<string, Dashboard>);
  const alerts = (jsonnet('mixin/rules.jsonnet', { deploymentLabels: labels }) as RuleFile).groups.flatMap((g) => g.rules).filter((r) => r.alert);

  test('each dashboard has a variable per label, and every query selects on both and groups by both', () => {
    expect(dashboards).toHaveLength(2);
    for (const d of dashboards) {
      expect(d.templating.list.map((v) => v.name)).toEqual(['datasource', 'cluster', 'namespace', 'prefix', 'queue']);
      const queries = panelQueries(d);
      expect(queries.length).toBe(allPanels(d).flatMap((p) => p.targets ?? []).length);
      for (const { panel, expr } of queries) {
        expect(analysePromQL(substituteVariables(expr)).errors, `${panel}: ${expr}`).toEqual([]);
        for (const l of labels) expect(expr, panel).toContain(`${l}=~"$${l}"`);
        for (const m of expr.matchAll(/\b(?:by|on) \(([^)]*)\)/g)) {
          const by = m[1]!.split(',').map((x) => x.trim());
          if (by.includes('queue')) expect(by.slice(0, 2), `${panel}: ${m[0]}`).toEqual(labels);
        }
      }
    }
  });

  test("every alert's dashboard_url opens its own cluster and namespace", () => {
    expect(alerts.length).toBeGreaterThan(10);
    for (const a of alerts) {
      for (const l of labels) expect(a.annotations!.dashboard_url, a.alert).toContain(`var-${l}={{ $labels.${l} | urlquery }}`);
    }
  });
});

describe('config strings that hold PromQL quoting characters', () => {
  const exporterJob = 'ops "bullmq" \\ exporter';
  const config = { exporterJob, ignoredQueues: 'say"hi"' };

  test('the rule file renders, promtool checks it clean, and the job matcher holds the exact value', () => {
    const rendered = jsonnet('mixin/rules.jsonnet', config) as RuleFile;
    const file = join(tmp, 'quoted.rules.yml');
    writeFileSync(file, JSON.stringify(rendered));
    const r = run(requireBinary('promtool'), ['check', 'rules', file], root);
    expect(r.status, r.output).toBe(0);
    expect(r.output).toContain('SUCCESS');
    const down = rendered.groups.flatMap((g) => g.rules).find((x) => x.alert === 'BullMQRedisDown')!;
    expect(down.expr).toContain(`job=${JSON.stringify(exporterJob)}`);
  });

  test('every dashboard query still parses, with the job matcher holding the exact value', () => {
    const dashboards = Object.values(jsonnet('mixin/dashboards.jsonnet', config) as Record<string, Dashboard>);
    let withJob = 0;
    for (const d of dashboards) {
      for (const { panel, expr } of panelQueries(d)) {
        expect(analysePromQL(substituteVariables(expr)).errors, `${panel}: ${expr}`).toEqual([]);
        if (expr.includes('job=')) {
          withJob++;
          expect(expr, panel).toContain(`job=${JSON.stringify(exporterJob)}`);
        }
      }
    }
    expect(withJob).toBeGreaterThan(5);
  });
});
