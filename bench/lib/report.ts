// Writes a benchmark's results into docs/benchmarks.md: each benchmark owns one `## ` section and replaces
// only that section when it runs again, so benchmarks written by different people live side by side.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';

const INTRO = `# Benchmarks

Numbers measured by the scripts in \`bench/\` (see bench/README.md for how to run them). Each \`## \` section is
written by one benchmark from a real run on the machine it names, together with the baseline it is compared
against in the same run; re-running a benchmark replaces only its own section.
`;

export function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** @param loadAtStart the load average when the benchmark started (loadAverage()). */
export function machineInfo(loadAtStart: string): string {
  const redis = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).match(/v=(\S+)/)?.[1] ?? 'unknown';
  return [
    `- date: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`,
    `- machine: ${cpus().length} CPUs (nproc), ${cpus()[0]?.model.trim() ?? 'unknown CPU'}; load average at start ${loadAtStart}`,
    `- node ${process.version}, redis-server ${redis} (private instance on loopback, no persistence), bullmq ${packageVersion('bullmq')}, ioredis ${packageVersion('ioredis')}`,
  ].join('\n');
}

function packageVersion(name: string): string {
  const file = new URL(`../../../node_modules/${name}/package.json`, import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/** Replaces (or appends) the section that starts with `heading` in `file`. */
export function writeSection(file: URL, heading: string, body: string): void {
  const doc = existsSync(file) ? readFileSync(file, 'utf8') : INTRO;
  const section = `${heading}\n\n${body.trim()}\n`;
  const start = doc.indexOf(`${heading}\n`);
  let next: string;
  if (start === -1) {
    next = `${doc.trimEnd()}\n\n${section}`;
  } else {
    const end = doc.indexOf('\n## ', start + heading.length);
    next = doc.slice(0, start) + section + (end === -1 ? '' : doc.slice(end));
  }
  writeFileSync(file, next);
}

/** A markdown table from a header row and rows of cells. */
export function table(header: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
