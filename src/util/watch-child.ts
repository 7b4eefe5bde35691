// Owns the rule that helper servers (redis-server, prometheus, alertmanager, a crashing consumer) never outlive the
// process that started them. Ctrl-C stops them in order; but a SIGKILL, an `npm` sent SIGTERM or a test runner that
// times out would leave them running for hours, with their temporary directories. Next to each child runs a tiny
// POSIX sh watchdog that polls this process's pid every second; when this process is gone it stops the child
// (SIGTERM, then SIGKILL) and removes the child's directory. Linux's PR_SET_PDEATHSIG is not reachable from Node, and
// `setpriv --pdeathsig` is not on every machine: sh is. The watchdog ends by itself as soon as the child does.
import { spawn, type ChildProcess } from 'node:child_process';

// $1 parent pid, $2 child pid, $3 directory ('' for none). The child's start time (field 22 of Linux's /proc/<pid>/stat,
// read with builtins: one `sleep` a second is all this forks) guards against a recycled pid: a process that merely
// got the same number is never killed. Without /proc, the pid alone.
const WATCHDOG = [
  'set -f; p=$1; c=$2; d=$3; s=; proc=',
  '[ -r /proc/$c/stat ] && proc=1',
  'st() { s=; [ -n "$proc" ] || return 0; read -r l < /proc/$c/stat 2>/dev/null || return 1; set -- $l; s=${22}; }',
  'st; t=$s',
  'same() { kill -0 $c 2>/dev/null && st && [ "$s" = "$t" ]; }',
  'while same; do',
  '  if ! kill -0 $p 2>/dev/null; then',
  '    kill -TERM $c 2>/dev/null; i=0',
  '    while same && [ $i -lt 10 ]; do sleep 1; i=$((i+1)); done',
  '    same && kill -KILL $c 2>/dev/null',
  '    [ -n "$d" ] && rm -rf "$d"',
  '    exit 0',
  '  fi',
  '  sleep 1',
  'done',
].join('\n');

/** Starts the watchdog for `child` (already spawned by this process); `dir` is removed if this process dies first. */
export function watchChild(child: ChildProcess, dir = ''): void {
  if (child.pid === undefined) return;
  const dog = spawn('sh', ['-c', WATCHDOG, 'queuelens-watchdog', String(process.pid), String(child.pid), dir], { stdio: 'ignore', detached: true });
  dog.on('error', () => undefined);
  dog.unref();
}
