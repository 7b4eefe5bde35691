// Writes the generated documentation files (npm run gen:docs).
import { writeFileSync } from 'node:fs';
import { renderMetricsDoc } from '../metrics/metrics-doc.js';

const target = new URL('../../docs/metrics.md', import.meta.url);
writeFileSync(target, renderMetricsDoc());
process.stdout.write(`wrote ${target.pathname}\n`);
