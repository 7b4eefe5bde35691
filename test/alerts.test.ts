// The alert rules as artefacts: promtool accepts them, every alert has a firing and a not-firing unit test
// asserting its rendered annotations, a runbook, links and a severity, and every series a rule reads is in
// the metric contract (or recorded by another rule).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { contractSeries } from '../src/monitoring/metric-contract.js';
import { settings } from '../src/thresholds/monitoring-settings.js';
import { analysePromQL } from './helpers/promql.js';
import { requireBinary, run } from './helpers/prometheus-binaries.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const rulesPath = 'alerts/queuelens.rules.yml';
const testsDir = 'alerts/tests';
const testFiles = readdirSync(join(root, testsDir))
  .filter((f) => f.endsWith('.test.yml'))
  .map((f) => join(testsDir, f));

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const groups = (parse(readFileSync(join(root, rulesPath), 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> }).groups;
const rules = groups.flatMap((g) => g.rules);
const alerts = rules.filter((r) => r.alert);
const alertNames = [...new Set(alerts.map((r) => r.alert!))];
const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));

const ISSUE_ALERTS = [
  'BullMQExporterDown',
  'BullMQRedisDown',
  'BullMQNoWorkers',
  'BullMQOldestJobTooOld',
  'BullMQBacklogGrowing',
  'BullMQHighFailureRate',
  'BullMQJobsStalling',
  'BullMQOrphanedActiveJobs',
  'BullMQDeadLetterQueueGrowing',
  'BullMQDeadLetterQueueNotEmpty',
  'BullMQEventsLost',
  'BullMQEventsLagging',
  'BullMQWaitTimeSLOFastBurn',
  'BullMQWaitTimeSLOSlowBurn',
];

describe('promtool', () => {
  test('a missing promtool fails with the command that installs it', () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      expect(() => requireBinary('promtool')).toThrow(/apt-get install -y prometheus\b/);
    } finally {
      process.env.PATH = path;
    }
  });

  test('check rules: the rule file is valid and lint-clean', () => {
    const promtool = requireBinary('promtool');
    const r = run(promtool, ['check', 'rules', rulesPath], root);
    expect(r.output).toContain('SUCCESS');
    expect(r.status, r.output).toBe(0);
  });

  test('test rules: every unit test passes', () => {
    const promtool = requireBinary('promtool');
    const r = run(promtool, ['test', 'rules', ...testFiles], root);
    expect(r.status, r.output).toBe(0);
    expect(r.output).not.toContain('FAILED');
  });

  test('a wrong expectation makes promtool fail (the unit tests can fail)', () => {
    const promtool = requireBinary('promtool');
    // Same rules, one expected value off by one: promtool must report it.
    const good = readFileSync(join(root, testsDir, 'queues.test.yml'), 'utf8');
    const bad = good.replace("'8 jobs of queue bull:email", "'9 jobs of queue bull:email");
    expect(bad).not.toBe(good);
    const dir = mkdtempSync(join(tmpdir(), 'queuelens-promtool-'));
    try {
      const file = join(dir, 'broken.test.yml');
      writeFileSync(file, bad.replace('../queuelens.rules.yml', join(root, rulesPath)));
      const r = run(promtool, ['test', 'rules', file], root);
      expect(r.status).not.toBe(0);
      expect(r.output).toContain('BullMQNoWorkers');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('unit-test coverage', () => {
  interface Case {
    alertname: string;
    exp_alerts?: Array<{ exp_labels?: Record<string, string>; exp_annotations?: Record<string, string> }>;
  }
  const cases: Case[] = testFiles.flatMap((f) => {
    const doc = parse(readFileSync(join(root, f), 'utf8')) as { tests: Array<{ alert_rule_test?: Case[] }> };
    return doc.tests.flatMap((t) => t.alert_rule_test ?? []);
  });

  test('every alert the issue lists exists', () => {
    expect(alertNames).toEqual(expect.arrayContaining(ISSUE_ALERTS));
  });

  test.each(alertNames)('%s has a firing case asserting all four annotations and a not-firing case', (name) => {
    const mine = cases.filter((c) => c.alertname === name);
    const firing = mine.filter((c) => (c.exp_alerts ?? []).length > 0);
    const silent = mine.filter((c) => (c.exp_alerts ?? []).length === 0);
    expect(firing.length, `${name}: no firing case`).toBeGreaterThan(0);
    expect(silent.length, `${name}: no not-firing case`).toBeGreaterThan(0);
    for (const c of firing) {
      for (const a of c.exp_alerts!) {
        expect(Object.keys(a.exp_annotations ?? {}).sort()).toEqual(['dashboard_url', 'description', 'runbook_url', 'summary']);
        expect(a.exp_labels?.severity).toMatch(/^(critical|warning|info)$/);
      }
    }
  });
});

describe('rule hygiene', () => {
  test.each(alertNames)('%s: severity, annotations, runbook and links', (name) => {
    for (const rule of alerts.filter((r) => r.alert === name)) {
      expect(rule.labels?.severity).toMatch(/^(critical|warning|info)$/);
      const a = rule.annotations ?? {};
      expect(Object.keys(a).sort()).toEqual(['dashboard_url', 'description', 'runbook_url', 'summary']);
      expect(a.runbook_url).toBe(`${settings.links.runbookBaseUrl}/${name}.md`);
      expect(existsSync(join(root, 'docs/runbooks', `${name}.md`)), `docs/runbooks/${name}.md`).toBe(true);
      expect(a.dashboard_url?.startsWith(`${settings.links.grafanaUrl}/d/`)).toBe(true);
      const perQueue = /by \(prefix, queue\)|prefix_queue:/.test(rule.expr);
      if (perQueue) {
        // On-call must see which queue and how bad, and land on that queue's dashboard.
        expect(a.description).toContain('{{ $labels.queue }}');
        expect(a.description).toContain('{{ $value');
        expect(a.dashboard_url).toContain('var-queue={{ $labels.queue | urlquery }}');
      }
    }
  });

  test('the runbook index lists every alert with its severity', () => {
    const index = readFileSync(join(root, 'docs/runbooks/README.md'), 'utf8');
    for (const name of alertNames) {
      const row = index.split('\n').find((l) => l.startsWith(`| ${name} |`));
      expect(row, `docs/runbooks/README.md has no row for ${name}`).toBeDefined();
      expect(row).toContain(`[${name}.md](${name}.md)`);
      for (const r of alerts.filter((a) => a.alert === name)) expect(row).toContain(r.labels!.severity);
    }
  });

  test('recording rules are named level:metric:operation', () => {
    for (const name of recorded) expect(name).toMatch(/^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/);
  });

  test('every series a rule reads is in the metric contract or recorded by a rule, with labels it has', () => {
    const contract = contractSeries();
    for (const rule of rules) {
      const { errors, selectors } = analysePromQL(rule.expr);
      expect(errors, rule.expr).toEqual([]);
      for (const s of selectors) {
        if (s.name === undefined) {
          const re = new RegExp(`^(?:${s.nameRegex})$`);
          expect(
            [...recorded].some((r) => re.test(r)),
            `${s.nameRegex} matches no recorded series`,
          ).toBe(true);
          continue;
        }
        if (recorded.has(s.name)) continue;
        const known = contract.get(s.name);
        expect(known, `${rule.record ?? rule.alert}: ${s.name} is not in the metric contract`).toBeDefined();
        for (const l of s.labels) expect(known!.labels, `${s.name} has no label ${l}`).toContain(l);
        // rate() and friends only over counters and histogram parts: a gauge's rate is meaningless.
        if (s.fn && ['rate', 'irate', 'increase'].includes(s.fn)) expect(known!.type, `${s.fn}(${s.name})`).not.toBe('gauge');
      }
    }
  });

  test('queue-level aggregations deduplicate replicas with max, never with a bare sum over raw series', () => {
    // A raw per-queue series summed without a max by over replicas first would double with two sidecars.
    for (const rule of rules) {
      const raw = rule.expr.match(/sum by \([^)]*\) \((?!max by)[a-z_]+\{/g) ?? [];
      expect(raw, rule.expr).toEqual([]);
    }
  });
});
