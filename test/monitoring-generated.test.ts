// The committed alerts/ and dashboards/ files are exactly what src/monitoring renders from settings.ts, and
// per-queue overrides split rules the way docs/monitoring.md says, and the metric contract matches the sidecar.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { METRICS } from '../src/metrics/definitions.js';
import { buildRuleGroups, type AlertRule } from '../src/monitoring/alert-rules.js';
import { METRIC_CONTRACT } from '../src/monitoring/metric-contract.js';
import { renderMonitoringFiles } from '../src/monitoring/generate.js';
import { settings, thresholdsFor, type MonitoringSettings } from '../src/thresholds/monitoring-settings.js';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('generated files', () => {
  const files = renderMonitoringFiles();
  test.each(Object.keys(files))('%s matches its source (run `npm run gen:monitoring` after editing src/monitoring)', (path) => {
    expect(readFileSync(join(root, path), 'utf8')).toBe(files[path]);
  });
});

describe('per-queue overrides', () => {
  const custom: MonitoringSettings = {
    ...settings,
    overrides: {
      'billing.v2': { oldestJob: { maxAgeSeconds: 60 } },
      invoices: { oldestJob: { maxAgeSeconds: 60 }, failureRate: { maxRatio: 0.5 } },
      reports: { oldestJob: { for: '10m' } },
    },
  };
  const alerts = buildRuleGroups(custom)
    .flatMap((g) => g.rules)
    .filter((r): r is AlertRule => 'alert' in r);
  const named = (name: string): AlertRule[] => alerts.filter((r) => r.alert === name);

  test('an override merges field by field over the defaults', () => {
    expect(thresholdsFor(custom, 'reports').oldestJob).toEqual({ maxAgeSeconds: settings.defaults.oldestJob.maxAgeSeconds, for: '10m' });
    expect(thresholdsFor(custom, 'unknown')).toEqual(settings.defaults);
  });

  test('queues sharing an override share one rule; the default rule excludes every overridden queue', () => {
    const oldest = named('BullMQOldestJobTooOld');
    expect(oldest.map((r) => r.labels.thresholds)).toEqual(['default', 'billing.v2,invoices', 'reports']);
    expect(oldest[0]!.expr).toContain('queue!~"billing\\\\.v2|invoices|reports"');
    expect(oldest[0]!.expr).toContain('> 300\n');
    expect(oldest[1]!.expr).toContain('queue=~"billing\\\\.v2|invoices"');
    expect(oldest[0]!.expr).toContain('unless on (namespace, prefix, queue)\nlabel_replace(max by (namespace, prefix, queue) (bullmq_dlq_jobs)');
    expect(oldest[1]!.expr).toContain('> 60\n');
    expect(oldest[2]!.for).toBe('10m');
  });

  test('alerts without an override stay a single rule without a thresholds label', () => {
    const failing = named('BullMQHighFailureRate');
    expect(failing).toHaveLength(2);
    const stalls = named('BullMQJobsStalling');
    expect(stalls).toHaveLength(1);
    expect(stalls[0]!.labels.thresholds).toBeUndefined();
    expect(stalls[0]!.expr.match(/queue[!=]~"[^"]*"/g)).toBeNull();
  });
});

describe('metric contract', () => {
  test('is every metric the sidecar defines, with its type and labels, plus the external ones', () => {
    for (const def of Object.values(METRICS)) {
      expect(METRIC_CONTRACT[def.name], def.name).toEqual({ type: def.type, labels: def.labels });
    }
    expect(Object.keys(METRIC_CONTRACT).sort()).toEqual(
      [...Object.values(METRICS).map((d) => d.name), 'up', 'process_resident_memory_bytes', 'process_cpu_seconds_total'].sort(),
    );
  });
});
