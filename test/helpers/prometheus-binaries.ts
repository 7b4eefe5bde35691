// Finds the Prometheus tools the monitoring tests run. A missing binary fails the test with the install
// command, never a silent skip.
import { spawnSync } from 'node:child_process';

const PACKAGE: Record<string, string> = {
  promtool: 'prometheus',
  prometheus: 'prometheus',
  'prometheus-alertmanager': 'prometheus-alertmanager',
  alertmanager: 'prometheus-alertmanager',
  jsonnet: 'jsonnet',
  kubectl: 'kubectl',
};

/** The first of `names` on PATH; throws a message naming the Debian package otherwise. */
export function requireBinary(...names: string[]): string {
  for (const name of names) {
    const probe = spawnSync(name, ['--version'], { encoding: 'utf8' });
    if (!probe.error) return name;
  }
  const pkg = PACKAGE[names[0] ?? ''] ?? names[0];
  throw new Error(
    `${names.join(' / ')} is not on PATH. The monitoring tests run the real tool: install it with \`apt-get install -y ${pkg}\` (Debian/Ubuntu) and run the tests again.`,
  );
}

export interface RunResult {
  status: number | null;
  output: string;
}

export function run(bin: string, args: string[], cwd: string): RunResult {
  const r = spawnSync(bin, args, { cwd, encoding: 'utf8', timeout: 50_000 });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}
