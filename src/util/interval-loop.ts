// Runs a task every interval, one run at a time: the next run is scheduled only after the previous one
// finished, so a slow Redis cannot pile up work. Timers are unref'd and cleared by stop().
export interface IntervalLoop {
  /** Resolves when the current run (if any) has finished; no further runs start. */
  stop(): Promise<void>;
  /** Runs the task now (after the current run), then keeps the schedule. */
  runNow(): Promise<void>;
}

/** `intervalMs` may be a function: it is asked again before every wait (e.g. a quick retry after a failure). */
export function startIntervalLoop(task: () => Promise<void>, intervalMs: number | (() => number), opts: { runImmediately?: boolean } = {}): IntervalLoop {
  const every = typeof intervalMs === 'function' ? intervalMs : () => intervalMs;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> = Promise.resolve();
  let stopped = false;

  const run = (): Promise<void> => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const started = Date.now();
    // The task must handle its own errors; a throw here is a bug, but it must not kill the loop.
    current = current
      .then(() => (stopped ? undefined : task()))
      .catch(() => undefined)
      .finally(() => {
        if (stopped) return;
        timer = setTimeout(() => void run(), Math.max(0, every() - (Date.now() - started)));
        timer.unref();
      });
    return current;
  };

  if (opts.runImmediately ?? true) void run();
  else {
    timer = setTimeout(() => void run(), every());
    timer.unref();
  }

  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await current;
    },
    runNow: run,
  };
}
