// The worker's context manager: a context is active exactly for the synchronous extent of with(), nested calls
// restore their outer context (also when the function throws), and nothing leaks past an `await`.
import { createContextKey, ROOT_CONTEXT } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { JobContextManager } from '../src/tracing/job-context-manager.js';

const KEY = createContextKey('test');
const ctxOf = (v: string) => ROOT_CONTEXT.setValue(KEY, v);
const value = (m: JobContextManager) => m.active().getValue(KEY);

describe('JobContextManager', () => {
  it('activates a context for the synchronous extent of with(), nesting and restoring', () => {
    const m = new JobContextManager();
    expect(m.active()).toBe(ROOT_CONTEXT);
    const seen = m.with(ctxOf('a'), () => {
      const inner = m.with(ctxOf('b'), () => value(m));
      return [value(m), inner, value(m)];
    });
    expect(seen).toEqual(['a', 'b', 'a']);
    expect(m.active()).toBe(ROOT_CONTEXT);
  });

  it('restores the outer context when the function throws, and passes this and arguments through', () => {
    const m = new JobContextManager();
    expect(() =>
      m.with(ctxOf('a'), () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(m.active()).toBe(ROOT_CONTEXT);
    const self = { n: 2 };
    expect(
      m.with(
        ctxOf('a'),
        function (this: typeof self, x: number) {
          return this.n * x;
        },
        self,
        21,
      ),
    ).toBe(42);
  });

  it('keeps nothing past an await: code after it must be handed the context', async () => {
    const m = new JobContextManager();
    const after = await m.with(ctxOf('a'), async () => {
      expect(value(m)).toBe('a');
      await Promise.resolve();
      return value(m);
    });
    expect(after).toBeUndefined();
  });

  it('binds a function to a context and leaves other values alone', () => {
    const m = new JobContextManager();
    const bound = m.bind(ctxOf('x'), (y: string) => `${String(value(m))}${y}`);
    expect(bound('!')).toBe('x!');
    expect(m.active()).toBe(ROOT_CONTEXT);
    const obj = { a: 1 };
    expect(m.bind(ctxOf('x'), obj)).toBe(obj);
  });
});
