// Static checks of the Grafana dashboards: every query parses as PromQL, names only contract metrics or
// recorded series (so a typo fails), never takes rate() of a gauge, and computes quantiles only with
// histogram_quantile over bucket rates summed by le. Running the queries against a live Prometheus is the
// end-to-end suite's job.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { contractSeries } from '../src/monitoring/metric-contract.js';
import { settings } from '../src/thresholds/monitoring-settings.js';
import { allPanels, loadDashboards, panelQueries as queries, substituteVariables } from './helpers/dashboards.js';
import { analysePromQL } from './helpers/promql.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dashboards = loadDashboards().map(({ file, dashboard }) => ({ file, d: dashboard }));
const rules = (parse(readFileSync(join(root, 'alerts/queuelens.rules.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ record?: string }> }> }).groups;
const recorded = new Set(rules.flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : []))));
const contract = contractSeries();
const deployment = settings.deploymentLabels;

test('the overview and the per-queue drill-down exist', () => {
  expect(dashboards.map((x) => x.d.uid).sort()).toEqual(['queuelens-overview', 'queuelens-queue']);
});

describe.each(dashboards)('$file', ({ d }) => {
  test('has a Prometheus datasource variable and multi/all prefix and queue variables', () => {
    const vars = Object.fromEntries(d.templating.list.map((v) => [v.name, v]));
    expect(vars.datasource?.type).toBe('datasource');
    expect(vars.datasource?.query).toBe('prometheus');
    for (const name of ['prefix', 'queue']) {
      expect(vars[name]?.type).toBe('query');
      expect(vars[name]?.multi).toBe(true);
      expect(vars[name]?.includeAll).toBe(true);
    }
  });

  test('every panel and query uses the datasource variable', () => {
    for (const p of allPanels(d).filter((x) => x.type !== 'row')) {
      expect(p.datasource?.uid, p.title).toBe('${datasource}');
      for (const t of p.targets ?? []) expect(t.datasource?.uid, p.title).toBe('${datasource}');
      expect((p.targets ?? []).length, `${p.title} has no query`).toBeGreaterThan(0);
    }
  });

  test('panel ids are unique', () => {
    const ids = allPanels(d).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test('every query parses and selects only contract metrics or recorded series, with their labels', () => {
    for (const { panel, expr } of queries(d)) {
      const a = analysePromQL(substituteVariables(expr));
      expect(a.errors, `${panel}: ${expr}`).toEqual([]);
      expect(a.selectors.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const s of a.selectors) {
        expect(s.name, `${panel}: selector without a metric name`).toBeDefined();
        const name = s.name!;
        if (recorded.has(name)) {
          for (const l of s.labels) expect([...deployment, 'prefix', 'queue', 'le'], `${panel}: ${name}{${l}}`).toContain(l);
          continue;
        }
        const known = contract.get(name);
        expect(known, `${panel}: ${name} is neither in the metric contract nor recorded by alerts/`).toBeDefined();
        // The deployment labels are target labels that the scrape config adds (docs/monitoring.md, How to scrape).
        for (const l of s.labels.filter((x) => !deployment.includes(x))) expect(known!.labels, `${panel}: ${name} has no label ${l}`).toContain(l);
        if (s.fn && ['rate', 'irate', 'increase'].includes(s.fn)) expect(known!.type, `${panel}: ${s.fn}(${name}) over a gauge`).not.toBe('gauge');
      }
    }
  });

  test('quantiles come only from histogram_quantile over bucket rates summed by le, or over native histograms summed', () => {
    for (const { panel, expr } of queries(d)) {
      expect(expr, `${panel}: quantile_over_time is not a histogram quantile`).not.toMatch(/(?<!histogram_)quantile(_over_time)?\s*\(/);
      const a = analysePromQL(substituteVariables(expr));
      for (const q of a.quantiles) {
        expect(q.aggregation?.op, `${panel}: ${expr}`).toBe('sum');
        // The native form (docs/metrics.md): a rate of the native histogram itself, which has no le.
        const native = /^sum by \([^)]*\) \(rate\(([a-z0-9_]+)\{/.exec(q.arg)?.[1];
        if (native !== undefined) {
          expect(contract.get(native)?.type, `${panel}: ${q.arg}`).toBe('histogram_native');
          continue;
        }
        expect(q.aggregation?.by, `${panel}: ${expr}`).toContain('le');
        expect(q.arg, `${panel}: histogram_quantile must read buckets`).toMatch(/_bucket(:rate\w+)?[{[]/);
      }
    }
  });

  test('has a multi/all variable per deployment label, before prefix, whose "All" also matches series without it', () => {
    const names = d.templating.list.map((v) => v.name);
    expect(names).toEqual(['datasource', ...deployment, 'prefix', 'queue']);
    for (const name of deployment) {
      const v = d.templating.list.find((x) => x.name === name)!;
      expect(v).toMatchObject({ type: 'query', multi: true, includeAll: true, allValue: '.*', query: `label_values(bullmq_queue_jobs, ${name})` });
    }
  });

  test('every query selects the chosen deployments and keeps them apart wherever it groups by queue', () => {
    for (const { panel, expr } of queries(d)) {
      for (const l of deployment) expect(expr, panel).toContain(`${l}=~"$${l}"`);
      for (const m of expr.matchAll(/\b(?:by|on) \(([^)]*)\)/g)) {
        const by = m[1]!.split(',').map((x) => x.trim());
        if (by.includes('queue') || by.includes('prefix')) for (const l of deployment) expect(by, `${panel}: ${m[0]}`).toContain(l);
      }
    }
  });

  test('every query is scoped to the selected queues or is about the exporter itself', () => {
    for (const { panel, expr } of queries(d)) {
      const perQueue = /bullmq_(queue|job|jobs|dlq)_|prefix_queue|events_(lag|lost|read|unmatched)/.test(expr);
      if (perQueue) expect(expr, panel).toContain('queue=~"$queue"');
    }
  });
});

test('variables are substituted the way Grafana does', () => {
  expect(substituteVariables('rate(x{queue=~"$queue", prefix=~"${prefix}"}[$__rate_interval])', { queue: ['email', 'webhook'] }, '1m')).toBe(
    'rate(x{queue=~"email|webhook", prefix=~".*"}[1m])',
  );
});

test('the static checks catch a typo and a rate over a gauge', () => {
  // Guards the guard: the checks above would be worthless if the parser saw nothing.
  const typo = analysePromQL('max by (prefix, queue) (bullmq_queue_job{queue=~"$queue"})').selectors[0]!;
  expect(contract.has(typo.name!)).toBe(false);
  const gaugeRate = analysePromQL('rate(bullmq_queue_workers[5m])').selectors[0]!;
  expect(gaugeRate.fn).toBe('rate');
  expect(contract.get(gaugeRate.name!)?.type).toBe('gauge');
  const bad = analysePromQL('histogram_quantile(0.9, rate(bullmq_job_wait_seconds_bucket[5m]))');
  expect(bad.quantiles[0]?.aggregation).toBeUndefined();
});
