// The process tree as a test sees it: what a command started, and whether it is still running.
import { execFileSync } from 'node:child_process';

/** pid and command name of every process under `pid`, recursively. */
export function descendants(pid: number): Array<{ pid: number; comm: string }> {
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid=,comm='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/));
  const out: Array<{ pid: number; comm: string }> = [];
  const walk = (parent: number) => {
    for (const [child, ppid, comm] of rows) {
      if (Number(ppid) !== parent) continue;
      out.push({ pid: Number(child), comm: comm! });
      walk(Number(child));
    }
  };
  walk(pid);
  return out;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
