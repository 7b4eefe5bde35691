// Runs a task every interval, one run at a time: the next run is scheduled only after the previous one
// finished, so a slow Redis cannot pile up work. Timers are unref'd and cleared by stop().
export interface IntervalLoop {
  /** Resolves when the current run (if any) has finished; no further runs start. */
  stop(): Promise<void>;
  /** Runs the task now (after the current run), then keeps the schedule. */
  runNow(): Promise<void>;
}

export function startIntervalLoop(task: () => Promise<void>, intervalMs: number, opts: { runImmediately?: boolean } = {}): IntervalLoop {
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
        timer = setTimeout(() => void run(), Math.max(0, intervalMs - (Date.now() - started)));
        timer.unref();
      });
    return current;
  };

  if (opts.runImmediately ?? true) void run();
  else {
    timer = setTimeout(() => void run(), intervalMs);
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
