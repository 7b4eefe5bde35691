// Renders an option table as markdown (flag, variable, default, meaning) for the generated docs.
import type { OptionSpec } from './options.js';

export function renderOptionsTable(specs: readonly OptionSpec[]): string {
  const rows = specs.map(
    (s) => `| \`--${s.name}\` | \`${s.env}\` | ${s.default === undefined ? '–' : `\`${s.default}\``} | ${s.description.replace(/\|/g, '\\|')} |`,
  );
  return ['| flag | environment variable | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}
