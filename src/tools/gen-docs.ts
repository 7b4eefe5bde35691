// Writes the generated documentation files (npm run gen:docs); test/generated-docs.test.ts fails on drift.
import { writeFileSync } from 'node:fs';
import { renderConfigurationDoc } from '../config/configuration-doc.js';
import { renderMetricsDoc } from '../metrics/metrics-doc.js';

for (const [file, text] of [
  ['metrics.md', renderMetricsDoc()],
  ['configuration.md', renderConfigurationDoc()],
] as const) {
  const target = new URL(`../../docs/${file}`, import.meta.url);
  writeFileSync(target, text);
  process.stdout.write(`wrote ${target.pathname}\n`);
}
