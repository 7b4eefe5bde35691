// Whether a process id names a live process on this host: how start-ups tell leftovers of a killed predecessor
// (temp directories, export temp files, the demo's claim) from those of a process still at work.

/** True while a process with this pid lives here (EPERM: it does, under another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
