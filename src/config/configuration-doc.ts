// Renders docs/configuration.md: every subcommand's options with their environment variables and defaults.
import { renderOptionsTable } from './options-doc.js';
import type { OptionSpec } from './options.js';
import { demoOptions, demoPeersOptions } from './demo-config.js';
import { sidecarOptions } from './sidecar-config.js';
import { topOptions } from './top-config.js';
import { workerOptions } from './worker-config.js';
import { dlqOptions } from './dlq-config.js';
import { loadgenOptions } from './loadgen-config.js';
import { enqueueOptions } from './enqueue-config.js';

export const DOCUMENTED_COMMANDS: Array<{ command: string; what: string; options: readonly OptionSpec[] }> = [
  { command: 'sidecar', what: 'the Prometheus exporter', options: sidecarOptions },
  { command: 'worker <email|webhook|export|all>', what: 'the traced workers', options: workerOptions },
  { command: 'enqueue <queue>', what: 'add one validated job', options: enqueueOptions },
  { command: 'loadgen', what: 'steady mixed traffic', options: loadgenOptions },
  { command: 'dlq list|show|redrive|purge <queue>', what: 'dead-letter queues', options: dlqOptions },
  { command: 'top', what: 'the queues in a terminal', options: topOptions },
  { command: 'demo', what: 'the whole product on this machine', options: demoOptions },
  { command: 'demo-peers', what: "the demo's SMTP sink and webhook receiver, for docker-compose.yml", options: demoPeersOptions },
];

export function renderConfigurationDoc(): string {
  const sections = DOCUMENTED_COMMANDS.map((c) => `## \`queuelens ${c.command}\`: ${c.what}\n\n${renderOptionsTable(c.options)}\n`);
  return `# Configuration

Generated from the option tables in \`src/config/\` by \`npm run gen:docs\`. Every flag has exactly one environment
variable; a flag wins over its variable. An empty value (\`REDIS_URL=\`) counts as unset where the option has a default.
A bad value stops the process with exit code 2 and a message naming the flag, its variable and what is allowed. \`queuelens <command> --help\` prints the same list.

${sections.join('\n')}`;
}
