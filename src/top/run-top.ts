// Runs `queuelens top`: on a terminal, a full-screen view redrawn in place (alternate screen, raw keys, resize
// aware) until q or Ctrl-C; elsewhere, a plain table per refresh (or one with --once). Restores the terminal
// on every way out.
import type { TopConfig, TopSort } from '../config/top-config.js';
import type { QueuesResponse } from '../status/queue-view.js';
import { renderTop } from './render-top.js';
import type { TopSource } from './top-source.js';

const KEYS: Record<string, TopSort> = { b: 'badness', n: 'name', d: 'backlog', a: 'age', i: 'in', o: 'out', f: 'fail', l: 'dlq', w: 'workers' };

export interface TopIo {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
}

/** Resolves with the exit code. */
export async function runTop(cfg: TopConfig, source: TopSource, io: TopIo = { stdin: process.stdin, stdout: process.stdout }): Promise<number> {
  const interactive = !cfg.once && io.stdout.isTTY === true && io.stdin.isTTY === true;
  return interactive ? runInteractive(cfg, source, io) : runPlain(cfg, source, io);
}

async function runPlain(cfg: TopConfig, source: TopSource, io: TopIo): Promise<number> {
  const width = io.stdout.isTTY ? io.stdout.columns : 160;
  const print = (res: QueuesResponse | undefined, error?: string) =>
    io.stdout.write(
      `${renderTop(res, { sort: cfg.sort, reverse: false, width, color: cfg.useColor, source: source.label, error, legend: false }).join('\n')}\n`,
    );
  if (cfg.once) {
    try {
      const res = await source.read();
      print(res);
      return res.collection.ok ? 0 : 1;
    } catch (err) {
      process.stderr.write(`queuelens top: ${(err as Error).message}\n`);
      return 1;
    } finally {
      await source.close();
    }
  }
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let timer: NodeJS.Timeout | undefined;
  const tick = async (): Promise<void> => {
    try {
      print(await source.read());
    } catch (err) {
      print(undefined, (err as Error).message);
    }
    io.stdout.write('\n');
    timer = setTimeout(() => void tick(), cfg.interval * 1000);
    timer.unref();
  };
  void tick();
  await stopped;
  clearTimeout(timer);
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  await source.close();
  return 0;
}

async function runInteractive(cfg: TopConfig, source: TopSource, io: TopIo): Promise<number> {
  const { stdin, stdout } = io;
  let sort: TopSort = cfg.sort;
  let reverse = false;
  let last: QueuesResponse | undefined;
  let error: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (finish = resolve));

  const draw = () => {
    const lines = renderTop(last, {
      sort,
      reverse,
      width: stdout.columns || 80,
      height: stdout.rows || 24,
      color: cfg.useColor,
      source: source.label,
      error,
      legend: true,
    });
    // Home, each line cleared to its end, then everything below cleared: no flicker, no leftovers.
    stdout.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\r\n')}\x1b[J`);
  };
  const refresh = async (): Promise<void> => {
    try {
      last = await source.read();
      error = undefined;
    } catch (err) {
      error = (err as Error).message;
    }
    draw();
    timer = setTimeout(() => void refresh(), cfg.interval * 1000);
    timer.unref();
  };
  const onKey = (buf: Buffer) => {
    const key = buf.toString();
    if (key === 'q' || key === 'Q' || key === '\x03' || key === '\x1b') return finish(0);
    if (key === 'r') reverse = !reverse;
    else if (KEYS[key]) {
      reverse = sort === KEYS[key] ? !reverse : false;
      sort = KEYS[key];
    } else return;
    draw();
  };
  const onSignal = () => finish(0);

  stdout.write('\x1b[?1049h\x1b[?25l'); // alternate screen, hide the cursor
  stdin.setRawMode(true);
  stdin.resume();
  stdin.on('data', onKey);
  stdout.on('resize', draw);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  draw();
  void refresh();
  const code = await done;
  clearTimeout(timer);
  stdin.off('data', onKey);
  stdout.off('resize', draw);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  stdin.setRawMode(false);
  stdin.pause();
  stdout.write('\x1b[?25h\x1b[?1049l'); // cursor back, leave the alternate screen
  await source.close();
  return code;
}
