// Renders docs/metrics.md from the metric definitions, so the documentation cannot drift from the code.
import { METRICS, type MetricDef } from './definitions.js';

export function renderMetricsDoc(defs: Record<string, MetricDef> = METRICS): string {
  const rows = Object.values(defs)
    .map((d) => `| \`${d.name}\` | ${d.type} | ${d.labels.map((l) => `\`${l}\``).join(', ') || '–'} | ${escape(d.help)} | ${escape(d.source)} |`)
    .join('\n');
  return `# Metrics

Generated from \`src/metrics/definitions.ts\` by \`npm run gen:docs\`; a test fails when this file drifts from the code.

Every queue metric carries \`prefix\` and \`queue\`. Label values come only from bounded sets (queue names found by
discovery, capped by \`--max-queues\`; fixed state and outcome names). No job ids, payloads, error messages or URLs.
Gauges are read from Redis once per collection (\`--collect-interval\`) and served from that snapshot, so any number
of scrapers cost Redis nothing extra, and every replica of the sidecar exports the same values.

| metric | type | labels | meaning | source |
| --- | --- | --- | --- | --- |
${rows}
`;
}

function escape(s: string): string {
  return s.replace(/\|/g, '\\|');
}
