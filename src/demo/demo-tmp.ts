// Owns the demo's temporary directories (export files, Prometheus data, a private Redis): each is named after the
// process that made it (`queuelens-demo-<kind>-<pid>-XXXXXX`), so a later start can tell the ones whose owner is
// gone (killed before it could clean up) and remove them.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive } from '../util/pid.js';

const NAME = /^queuelens-demo-[a-z]+-(?:(\d+)-)?[A-Za-z0-9]{6}$/;
/** Directories of the old naming (no pid) are removed once they are this old. */
const UNOWNED_AGE_MS = 3_600_000;

export function demoTempDir(kind: string): string {
  return mkdtempSync(join(tmpdir(), `queuelens-demo-${kind}-${process.pid}-`));
}

/** Removes the demo directories whose process is gone; returns how many. */
export function removeStaleDemoDirs(dir = tmpdir()): number {
  let removed = 0;
  for (const name of readdirSync(dir)) {
    const m = NAME.exec(name);
    if (!m) continue;
    const path = join(dir, name);
    const stale = m[1] !== undefined ? !processAlive(Number(m[1])) : Date.now() - statSync(path).mtimeMs > UNOWNED_AGE_MS;
    if (!stale) continue;
    rmSync(path, { recursive: true, force: true });
    removed += 1;
  }
  return removed;
}
