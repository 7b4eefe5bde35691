// Runs the `jsonnet` command (Debian package jsonnet) on a file of the monitoring mixin with a config object as
// its top-level argument. Used at generation and test time only; the sidecar never needs it.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** mixin/ at the repository root, from src/monitoring or dist/monitoring alike. */
export const MIXIN_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'mixin');

/** Evaluates mixin/<file> (a function of one argument `config`) with `config` and returns jsonnet's output. */
export function renderJsonnet(file: string, config: unknown): string {
  const r = spawnSync('jsonnet', ['-J', MIXIN_DIR, '--tla-code', `config=${JSON.stringify(config)}`, join(MIXIN_DIR, file)], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) {
    throw new Error(
      `jsonnet could not run (${r.error.message}): the monitoring mixin is rendered with it; install it with \`apt-get install -y jsonnet\` (Debian/Ubuntu).`,
    );
  }
  if (r.status !== 0) throw new Error(`jsonnet failed on mixin/${file}:\n${r.stderr}`);
  return r.stdout;
}
