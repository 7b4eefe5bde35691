// Creates the pino logger every process uses; all output passes through redact.ts.
import { pino, type DestinationStream, type Logger } from 'pino';
import { redactString, redactValue } from './redact.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level?: string;
  name?: string;
  /** For tests: where lines go (default stdout). */
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      name: opts.name ?? 'queuelens',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => redactValue(obj) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          const clean = args.map((a) => (typeof a === 'string' ? redactString(a) : a));
          method.apply(this, clean as Parameters<typeof method>);
        },
      },
    },
    opts.destination,
  );
}
