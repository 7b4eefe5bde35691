// The worker-side option tables (worker, enqueue, loadgen, dlq): every option has a bad value that is
// refused naming the flag and its variable; through the real CLI a bad flag or variable exits 2.
import { describe, expect, it } from 'vitest';
import { ConfigError, resolveOptions, type OptionSpec } from '../src/config/options.js';
import { dlqOptions, enqueueOptions, loadgenOptions, workerOptions } from '../src/config/worker-config.js';
import { runCli } from './helpers/cli.js';

const SHARED: Record<string, string> = { 'redis-url': 'http://x', prefix: 'a*b', 'log-level': 'loud' };
const TABLES: Array<{ command: string[]; specs: readonly OptionSpec[]; bad: Record<string, string> }> = [
  {
    command: ['worker', 'email'],
    specs: workerOptions,
    bad: {
      ...SHARED,
      'smtp-url': 'http://mail',
      'smtp-from': ' ',
      'webhook-secret': ' ',
      'webhook-timeout': '0',
      'webhook-allow': ' , ',
      'export-dir': ' ',
      'email-concurrency': '0',
      'email-rate-limit': '10',
      'webhook-concurrency': 'many',
      'webhook-rate-limit': '0/1',
      'export-concurrency': '1.5',
      'export-rate-limit': '1/0',
      'shutdown-timeout': 'never',
      'lock-duration': '0.01',
      'stalled-interval': '-1',
    },
  },
  {
    command: ['enqueue', 'email'],
    specs: enqueueOptions,
    bad: { ...SHARED, data: '{nope', name: ' ', 'idempotency-key': ' ', delay: '-1', attempts: '0' },
  },
  {
    command: ['loadgen'],
    specs: loadgenOptions,
    bad: { ...SHARED, scenario: 'meltdown', rate: '0', duration: '0', 'failure-share': '1.5', mix: 'email=0', 'webhook-target': 'ftp://x', 'export-rows': '-5' },
  },
  {
    command: ['dlq', 'list', 'email'],
    specs: dlqOptions,
    bad: { ...SHARED, id: ' , ', since: 'last week', all: 'maybe', 'dry-run': 'perhaps', limit: '0' },
  },
];

const camel = (n: string) => n.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

describe('worker-side configuration', () => {
  for (const t of TABLES) {
    it(`${t.command[0]}: every option has a bad value that is refused naming flag and variable`, () => {
      expect(Object.keys(t.bad).sort()).toEqual(t.specs.map((o) => o.name).sort());
      for (const spec of t.specs) {
        let err: unknown;
        try {
          resolveOptions(t.specs, { [camel(spec.name)]: t.bad[spec.name] });
        } catch (e) {
          err = e;
        }
        expect(err, spec.name).toBeInstanceOf(ConfigError);
        expect((err as Error).message).toContain(`--${spec.name} (${spec.env})`);
      }
    });

    it(`${t.command[0]}: exits 2 for a bad flag and a bad variable, and --help lists every variable`, async () => {
      const spec = t.specs[t.specs.length - 2]!;
      const viaFlag = await runCli([...t.command, `--${spec.name}`, t.bad[spec.name]!]);
      expect(viaFlag.code).toBe(2);
      expect(viaFlag.output).toContain(`--${spec.name} (${spec.env})`);
      const viaEnv = await runCli(t.command, { [spec.env]: t.bad[spec.name] });
      expect(viaEnv.code).toBe(2);
      expect(viaEnv.output).toContain(`--${spec.name} (${spec.env})`);
      const help = await runCli([...t.command.slice(0, t.command[0] === 'dlq' ? 2 : 1), '--help']);
      for (const o of t.specs) expect(help.output).toContain(o.env);
    });
  }

  it('hides secret values in errors', () => {
    expect(() => resolveOptions(workerOptions, { smtpUrl: 'http://user:hunter2@mail' })).toThrow(/--smtp-url \(SMTP_URL\) \(value hidden\)/);
  });
});
