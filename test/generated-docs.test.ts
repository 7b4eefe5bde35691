// Generated files must match their source: regenerate with `npm run gen:docs`.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderConfigurationDoc } from '../src/config/configuration-doc.js';
import { METRICS } from '../src/metrics/definitions.js';
import { renderMetricsDoc } from '../src/metrics/metrics-doc.js';

describe('generated docs', () => {
  it('docs/metrics.md matches src/metrics/definitions.ts (run `npm run gen:docs`)', () => {
    expect(readFileSync(new URL('../docs/metrics.md', import.meta.url), 'utf8')).toBe(renderMetricsDoc());
  });

  it('docs/configuration.md matches the option tables (run `npm run gen:docs`)', () => {
    expect(readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8')).toBe(renderConfigurationDoc());
  });

  it('every metric follows the naming rules', () => {
    for (const d of Object.values(METRICS)) {
      expect(d.name).toMatch(/^bullmq_[a-z0-9_]+$/);
      expect(d.help.length).toBeGreaterThan(10);
      if (d.type === 'counter') expect(d.name).toMatch(/_total$/);
      else expect(d.name).not.toMatch(/_total$/);
      // build_info is one series per process: its labels are constants of the build, not of the data.
      const allowed = d.name.endsWith('_build_info') ? ['version', 'nodejs_version'] : ['prefix', 'queue', 'state', 'attempt', 'outcome', 'job_name', 'reason'];
      for (const l of d.labels) expect(allowed).toContain(l);
    }
  });
});
