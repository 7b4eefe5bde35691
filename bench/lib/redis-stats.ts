// Measures what one benchmarked run cost the Redis server: command time from INFO commandstats, process CPU
// from INFO cpu, and the slowest single top-level command from SLOWLOG, all reset right before the run.
import type { Redis } from 'ioredis';

/**
 * Commands a client sends. Redis 7 also counts (and slow-logs) the commands a script runs inside the script's
 * own time, so only these top-level entries are summed, or script internals would be counted twice.
 */
const TOP_LEVEL = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'client|list']);
/** Slowlog threshold during runs: above every O(1) command a script runs, below every script call we care about. */
export const SLOWLOG_THRESHOLD_US = 10;
/** SLOWLOG address of commands run inside a Lua script. */
const SCRIPT_CLIENT_ADDR = '?:0';

export interface RunCost {
  /** Σ usec of top-level commands (INFO commandstats). */
  commandUsec: number;
  calls: number;
  /** Redis process CPU (user+sys, INFO cpu): includes protocol parsing and networking. */
  cpuUsec: number;
  /** Top-level commands that took at least SLOWLOG_THRESHOLD_US, as SLOWLOG saw them. */
  logged: LoggedCommand[];
}

export interface LoggedCommand {
  usec: number;
  args: string[];
}

export class RedisStats {
  private cpuBefore = 0;

  /** `admin` must be a dedicated connection: its own commands are excluded by its connection name. */
  constructor(
    private readonly admin: Redis,
    private readonly adminName: string,
  ) {}

  async configure(): Promise<void> {
    await this.admin.config('SET', 'slowlog-log-slower-than', String(SLOWLOG_THRESHOLD_US));
    await this.admin.config('SET', 'slowlog-max-len', '100000');
  }

  async reset(): Promise<void> {
    await this.admin.slowlog('RESET');
    await this.admin.config('RESETSTAT');
    this.cpuBefore = await this.cpuUsec();
  }

  async read(): Promise<RunCost> {
    const cpuAfter = await this.cpuUsec();
    const info = (await this.admin.info('commandstats')) as string;
    let commandUsec = 0;
    let calls = 0;
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
      if (!TOP_LEVEL.has(m[1]!)) continue;
      calls += Number(m[2]);
      commandUsec += Number(m[3]);
    }
    const logged = (await this.slowlog()).filter((e) => e.name !== this.adminName).map(({ usec, args }) => ({ usec, args }));
    return { commandUsec, calls, cpuUsec: cpuAfter - this.cpuBefore, logged };
  }

  /**
   * The intrinsic cost of commands seen in a run: each is sent again `repeats` times on `replay` (a connection
   * named `replayName`) and its fastest SLOWLOG duration kept. A command's wall time inside Redis includes any
   * time the OS took the CPU away from Redis; on a shared machine that, not the command, is what a single
   * maximum measures, while the minimum over a few repeats is what the command itself costs.
   */
  async replayMin(replay: Redis, replayName: string, commands: LoggedCommand[], repeats: number): Promise<LoggedCommand[]> {
    // SLOWLOG shortens long argument lists; those cannot be replayed.
    const whole = commands.filter((c) => !c.args.some((a) => /more arguments\)$|more bytes\)$/.test(a)));
    await this.admin.slowlog('RESET');
    const pipe = replay.pipeline();
    // Round after round, so one long preemption cannot spoil every repeat of the same command.
    for (let r = 0; r < repeats; r += 1) for (const c of whole) pipe.call(c.args[0]!, ...c.args.slice(1));
    for (const [err] of (await pipe.exec()) ?? []) if (err) throw err;
    const min = new Map<string, LoggedCommand>();
    for (const e of await this.slowlog()) {
      if (e.name !== replayName) continue;
      const key = e.args.join('\u0000');
      const prev = min.get(key);
      if (!prev || e.usec < prev.usec) min.set(key, { usec: e.usec, args: e.args });
    }
    return [...min.values()];
  }

  /** Top-level SLOWLOG entries (commands run inside scripts are left out). */
  private async slowlog(): Promise<Array<LoggedCommand & { name: string }>> {
    const entries = (await this.admin.slowlog('GET', 100_000)) as Array<[number, number, number, string[], string, string]>;
    return entries.filter(([, , , , addr]) => addr !== SCRIPT_CLIENT_ADDR).map(([, , usec, args, , name]) => ({ usec, args, name }));
  }

  private async cpuUsec(): Promise<number> {
    const info = (await this.admin.info('cpu')) as string;
    const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0);
    const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0);
    return Math.round((user + sys) * 1e6);
  }
}

export function slowest(commands: LoggedCommand[]): LoggedCommand | undefined {
  return commands.reduce<LoggedCommand | undefined>((a, b) => (!a || b.usec > a.usec ? b : a), undefined);
}

/** `EVALSHA (16 keys)`, short enough for a table cell. */
export function describe(args: string[]): string {
  const [cmd = '?', ...rest] = args;
  const head = cmd.toUpperCase();
  if (/^EVAL/.test(head)) return `${head} (${rest[1] ?? '?'} keys)`;
  return [head, ...rest.slice(0, 1)].join(' ');
}
