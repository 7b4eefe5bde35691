// The option tables of `queuelens top` and `queuelens demo`: every option has a bad value that is refused
// naming the flag and its variable; through the real CLI a bad flag or variable exits 2.
import { describe, expect, it } from 'vitest';
import { demoOptions } from '../src/config/demo-config.js';
import { ConfigError, resolveOptions, type OptionSpec } from '../src/config/options.js';
import { resolveTopConfig, topOptions } from '../src/config/top-config.js';
import { runCli } from './helpers/cli.js';

const TABLES: Array<{ command: string; specs: readonly OptionSpec[]; bad: Record<string, string> }> = [
  {
    command: 'top',
    specs: topOptions,
    bad: {
      url: 'redis://x',
      backend: 'mysql',
      'database-url': 'mysql://x',
      'pg-schema': 'x'.repeat(64),
      'pg-own-schema': ' x',
      'pg-statement-timeout': '0',
      'redis-url': 'http://x',
      'redis-cluster-nodes': ' , ',
      prefixes: 'a*',
      'own-prefix': 'a b',
      interval: '0',
      sort: 'loudness',
      once: 'maybe',
      color: 'sometimes',
      'log-level': 'loud',
    },
  },
  {
    command: 'demo',
    specs: demoOptions,
    bad: {
      'redis-url': 'http://x',
      backend: 'mysql',
      'database-url': 'mysql://x',
      port: '70000',
      host: ' ',
      'jobs-per-second': '0',
      'prometheus-port': '-1',
      'log-level': 'loud',
      keep: 'maybe',
    },
  },
];

const camel = (n: string) => n.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

describe('operator commands configuration', () => {
  for (const t of TABLES) {
    it(`${t.command}: every option has a bad value that is refused naming flag and variable`, () => {
      expect(Object.keys(t.bad).sort()).toEqual(t.specs.map((o) => o.name).sort());
      for (const spec of t.specs) {
        const run = () => resolveOptions(t.specs, { [camel(spec.name)]: t.bad[spec.name] });
        expect(run, spec.name).toThrow(ConfigError);
        expect(run, spec.name).toThrow(`--${spec.name} (${spec.env})`);
      }
    });

    it(`${t.command}: a bad flag and a bad variable exit 2`, async () => {
      const flag = await runCli([t.command, '--log-level', 'loud']);
      expect(flag.code).toBe(2);
      expect(flag.output).toContain('--log-level (LOG_LEVEL)');
      const env = await runCli([t.command], { [t.specs[1]!.env]: t.bad[t.specs[1]!.name] });
      expect(env.code).toBe(2);
      expect(env.output).toContain(`(${t.specs[1]!.env})`);
    });
  }

  it('top: colours only on a terminal without NO_COLOR, unless forced', () => {
    expect(resolveTopConfig({ color: 'auto' }, true, {}).useColor).toBe(true);
    expect(resolveTopConfig({ color: 'auto' }, false, {}).useColor).toBe(false);
    expect(resolveTopConfig({ color: 'auto' }, true, { NO_COLOR: '1' }).useColor).toBe(false);
    expect(resolveTopConfig({ color: 'always' }, false, {}).useColor).toBe(true);
    expect(resolveTopConfig({ color: 'never' }, true, {}).useColor).toBe(false);
  });
});
