// Redis command time of one set of clients over a window, split by command and by script: SLOWLOG with a 0 µs
// threshold logs every command with its duration (the same measure as INFO commandstats' usec: time inside
// Redis, no I/O) and the name of the client that sent it, so the traffic's own commands can be left out exactly
// instead of netted out by proportion. Logging every command costs Redis CPU of its own, so these windows are
// kept apart from the ones whose used_cpu is reported. Script calls are named by their file in src/redis/lua/.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { LUA_SOURCES } from '../../src/redis/lua-embedded.js';

/** SLOWLOG address of commands run inside a Lua script (counted in the script's own time). */
const SCRIPT_CLIENT_ADDR = '?:0';

export interface CommandTime {
  /** Σ µs of the clients' top-level commands in the window, scaled (see commandTime). */
  usec: number;
  calls: number;
  /** By command (`EVALSHA events-commit-n.lua`, `XREAD`, ...): calls, µs (scaled), slowest call in µs. */
  by: Map<string, { calls: number; usec: number; maxUsec: number }>;
  /**
   * Σ over commands of calls × that command's median µs, scaled: what the window cost with each call at its typical
   * time. A Redis preempted by the machine's other work makes single calls take milliseconds of wall time inside
   * Redis, which `usec` adds up; this leaves them out (and is rough for scripts whose calls vary in size).
   */
  typicalUsec: number;
}

const SCRIPTS = new Map<string, string>();

/** Names the scripts of `sources` (file → text, as lua-embedded.ts) in the split; `tag` marks another build's. */
export function nameScripts(sources: Readonly<Record<string, string>>, tag = ''): void {
  for (const [file, lua] of Object.entries(sources)) {
    const sha = createHash('sha1').update(lua).digest('hex');
    if (!SCRIPTS.has(sha)) SCRIPTS.set(sha, `${file}${tag}`);
  }
}
nameScripts(LUA_SOURCES);

function label(args: string[]): string {
  const cmd = (args[0] ?? '?').toUpperCase();
  if (cmd.startsWith('EVALSHA')) return `${cmd} ${SCRIPTS.get(args[1] ?? '') ?? `other script ${(args[1] ?? '').slice(0, 8)}`}`;
  if (cmd === 'CLIENT') return `CLIENT ${(args[1] ?? '').toUpperCase()}`;
  return cmd;
}

/**
 * Runs `run` with every command logged, and returns the command time of the clients whose name `isOurs` accepts,
 * times `scale` (a window of W s scaled to 15 s: 15 / W; one baseline pass that stands for a window: 1).
 * `admin` must not match `isOurs`.
 */
export async function commandTime(admin: Redis, isOurs: (clientName: string) => boolean, run: () => Promise<void>, scale: number): Promise<CommandTime> {
  const [, threshold] = (await admin.config('GET', 'slowlog-log-slower-than')) as [string, string];
  const [, maxLen] = (await admin.config('GET', 'slowlog-max-len')) as [string, string];
  await admin.config('SET', 'slowlog-max-len', '1000000');
  await admin.slowlog('RESET');
  await admin.config('SET', 'slowlog-log-slower-than', '0');
  try {
    await run();
  } finally {
    await admin.config('SET', 'slowlog-log-slower-than', threshold);
  }
  const entries = (await admin.slowlog('GET', -1)) as Array<[number, number, number, string[], string, string]>;
  await admin.slowlog('RESET');
  await admin.config('SET', 'slowlog-max-len', maxLen);
  const by = new Map<string, { calls: number; usec: number; maxUsec: number }>();
  const samples = new Map<string, number[]>();
  let usec = 0;
  let calls = 0;
  for (const [, , us, args, addr, name] of entries) {
    if (addr === SCRIPT_CLIENT_ADDR || !isOurs(name)) continue;
    const key = label(args);
    const xs = samples.get(key) ?? [];
    xs.push(us);
    samples.set(key, xs);
    const e = by.get(key) ?? { calls: 0, usec: 0, maxUsec: 0 };
    e.calls += 1;
    e.usec += us * scale;
    e.maxUsec = Math.max(e.maxUsec, us);
    by.set(key, e);
    usec += us * scale;
    calls += 1;
  }
  let typicalUsec = 0;
  for (const [key, xs] of samples) {
    const sorted = xs.sort((a, b) => a - b);
    typicalUsec += (by.get(key)?.calls ?? 0) * (sorted[sorted.length >> 1] ?? 0) * scale;
  }
  return { usec, calls, by, typicalUsec };
}
