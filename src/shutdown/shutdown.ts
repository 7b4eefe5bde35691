// Ordered shutdown on SIGTERM/SIGINT: run the steps in order, exit 0, and never hang past the deadline.
import type { Logger } from '../log/logger.js';

export interface ShutdownStep {
  name: string;
  run: () => Promise<unknown> | unknown;
}

export interface ShutdownOptions {
  log: Logger;
  /** Hard deadline; past it the process exits 1. */
  timeoutMs?: number;
  signals?: NodeJS.Signals[];
  exit?: (code: number) => void;
  /**
   * Shut down, as on SIGTERM, when the process that started this one is gone (this one was reparented). `npm run demo`
   * sent SIGTERM kills npm and its shell but not node, which would run on unseen for hours.
   */
  watchParent?: boolean;
}

/** Installs the signal handlers; returns a function that runs the same shutdown programmatically. */
export function installShutdown(steps: ShutdownStep[], opts: ShutdownOptions): () => Promise<void> {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  let running: Promise<void> | undefined;

  const shutdown = (reason: string): Promise<void> => {
    if (running) return running;
    opts.log.info({ reason }, 'shutting down');
    const deadline = setTimeout(() => {
      opts.log.error({ timeoutMs: opts.timeoutMs ?? 5000 }, 'shutdown deadline passed; exiting anyway');
      exit(1);
    }, opts.timeoutMs ?? 5000);
    deadline.unref();
    running = (async () => {
      for (const step of steps) {
        try {
          await step.run();
        } catch (err) {
          opts.log.warn({ step: step.name, err }, 'shutdown step failed; continuing');
        }
      }
      clearTimeout(deadline);
      opts.log.info('shutdown complete');
      exit(0);
    })();
    return running;
  };

  for (const sig of opts.signals ?? (['SIGTERM', 'SIGINT'] as NodeJS.Signals[])) {
    // `on`, not `once`: a second signal while shutting down (a double Ctrl-C, a supervisor repeating SIGTERM) joins the
    // shutdown under way instead of killing the process by the signal's default with its steps half done.
    process.on(sig, () => void shutdown(sig));
  }
  if (opts.watchParent) {
    const parent = process.ppid;
    const watch = setInterval(() => {
      if (process.ppid === parent) return;
      clearInterval(watch);
      void shutdown('parent process gone');
    }, 1000);
    watch.unref();
  }
  return () => shutdown('requested');
}
