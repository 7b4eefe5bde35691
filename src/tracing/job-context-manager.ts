// Owns the context manager of worker processes: a context is active only for the synchronous extent of
// `context.with()`, and code that continues after an `await` passes the job's context on explicitly.
//
// Why not AsyncLocalStorage: on Node 20 it is built on promise hooks that run for every promise the process
// creates, sampled or not, traced or not. BullMQ and ioredis create dozens per job; measured on noop jobs, the
// hooks alone took ~10% of a worker's throughput, more than the whole budget of tracing at 10% sampling
// (docs/benchmarks.md, Workers). queuelens's own worker code carries the job's context by hand (ProcessContext.trace,
// withSpan's parent), so its spans keep their tree; what is lost is automatic parenting of work that a library
// starts after an `await` (the Redis commands BullMQ sends for a job). QUEUELENS_TRACE_CONTEXT=async brings
// AsyncLocalStorage back at that price.
import { ROOT_CONTEXT, type Context, type ContextManager } from '@opentelemetry/api';

export class JobContextManager implements ContextManager {
  private current: Context = ROOT_CONTEXT;

  active(): Context {
    return this.current;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    const previous = this.current;
    this.current = ctx;
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.current = previous;
    }
  }

  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const fn = target as unknown as (...args: unknown[]) => unknown;
    const run = (self: unknown, args: unknown[]) => this.with(ctx, () => fn.apply(self, args));
    return function (this: unknown, ...args: unknown[]) {
      return run(this, args);
    } as unknown as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.current = ROOT_CONTEXT;
    return this;
  }
}
