// The worker-side option tables (worker, enqueue, loadgen, dlq): every option has a bad value that is
// refused naming the flag and its variable; through the real CLI a bad flag or variable exits 2. With cluster
// nodes, the BullMQ prefix must carry a hash tag.
import { describe, expect, it } from 'vitest';
import { ConfigError, resolveOptions, type OptionSpec } from '../src/config/options.js';
import { resolveWorkerConfig, workerOptions } from '../src/config/worker-config.js';
import { dlqOptions, resolveDlqConfig } from '../src/config/dlq-config.js';
import { loadgenOptions, resolveLoadgenConfig } from '../src/config/loadgen-config.js';
import { enqueueOptions, resolveEnqueueConfig } from '../src/config/enqueue-config.js';
import { clusterPrefixProblem, keySlot, prefixHashTag } from '../src/redis/slots.js';
import { SsrfGuard } from '../src/workers/ssrf-guard.js';
import { runCli } from './helpers/cli.js';

const SHARED: Record<string, string> = {
  'redis-url': 'http://x',
  'redis-cluster-nodes': '127.0.0.1',
  prefix: 'a*b',
  'log-level': 'loud',
  backend: 'mongo',
  'database-url': 'mysql://x',
  'pg-schema': ' bullmq',
  'pg-own-schema': 'x'.repeat(64),
};
const TABLES: Array<{ command: string[]; specs: readonly OptionSpec[]; bad: Record<string, string> }> = [
  {
    command: ['worker', 'email'],
    specs: workerOptions,
    bad: {
      ...SHARED,
      migrate: 'maybe',
      'own-prefix': 'a b',
      'smtp-url': 'http://mail',
      'smtp-from': ' ',
      'webhook-secret': ' ',
      'webhook-timeout': '0',
      'export-max-bytes': '0',
      'webhook-allow': ' , ',
      'export-dir': ' ',
      'email-concurrency': '0',
      'email-rate-limit': '10',
      'webhook-concurrency': 'many',
      'webhook-rate-limit': '0/1',
      'export-concurrency': '1.5',
      'export-rate-limit': '1/0',
      'health-port': '70000',
      'health-host': ' ', // '' counts as unset: the default
      'shutdown-timeout': 'never',
      'lock-duration': '0.01',
      'stalled-interval': '-1',
    },
  },
  {
    command: ['enqueue', 'email'],
    specs: enqueueOptions,
    bad: { ...SHARED, migrate: 'maybe', data: '{nope', name: ' ', 'idempotency-key': ' ', delay: '-1', attempts: '0' },
  },
  {
    command: ['loadgen'],
    specs: loadgenOptions,
    bad: {
      ...SHARED,
      migrate: 'maybe',
      scenario: 'meltdown',
      rate: '0',
      duration: '0',
      'failure-share': '1.5',
      mix: 'email=0',
      'webhook-target': 'ftp://x',
      'export-rows': '-5',
    },
  },
  {
    command: ['dlq', 'list', 'email'],
    specs: dlqOptions,
    bad: { ...SHARED, 'own-prefix': '{x}', id: ' , ', since: 'last week', all: 'maybe', 'dry-run': 'perhaps', limit: '0' },
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
      expect(help.output).toContain('--redis-cluster-nodes <list>');
    });

    it(`${t.command[0]}: with cluster nodes, refuses a prefix without a hash tag and accepts one with`, () => {
      const resolve = { worker: resolveWorkerConfig, enqueue: resolveEnqueueConfig, loadgen: resolveLoadgenConfig, dlq: resolveDlqConfig }[
        t.command[0] as 'worker'
      ];
      const redisClusterNodes = '127.0.0.1:7000,127.0.0.1:7001';
      expect(() => resolve({ redisClusterNodes })).toThrow(
        new ConfigError('invalid --prefix (QUEUELENS_PREFIX) "bull" with --redis-cluster-nodes (REDIS_CLUSTER_NODES): ' + clusterPrefixProblem('bull')),
      );
      expect(() => resolve({ redisClusterNodes, prefix: 'app{}' })).toThrow(/"app\{\}" with --redis-cluster-nodes .*e\.g\. \{bull\}/);
      expect(resolve({ redisClusterNodes, prefix: '{bull}' })).toMatchObject({ prefix: '{bull}', redisClusterNodes: ['127.0.0.1:7000', '127.0.0.1:7001'] });
      // Standalone Redis has no slots: any prefix goes.
      expect(resolve({ prefix: 'bull' }).prefix).toBe('bull');
    });
  }

  it('--webhook-allow refuses what the SSRF guard could not parse, and accepts what it can', async () => {
    for (const bad of ['10.0.0.0/99', 'hooks.internal/24', '::1/129', '999.1.1.1', 'exa mple.com', 'http://hooks.internal']) {
      expect(() => resolveOptions(workerOptions, { webhookAllow: `127.0.0.1,${bad}` }), bad).toThrow(ConfigError);
      expect(() => resolveOptions(workerOptions, { webhookAllow: bad }), bad).toThrow(`--webhook-allow (WEBHOOK_ALLOW) ${JSON.stringify(bad)}`);
    }
    const good = '127.0.0.1/32,10.0.0.0/8,::1,fd00::/8,localhost,Hooks.Internal,svc_a.local';
    const cfg = resolveOptions(workerOptions, { webhookAllow: good });
    expect(cfg.webhookAllow).toEqual(good.split(','));
    expect(() => new SsrfGuard(cfg.webhookAllow)).not.toThrow();

    const cli = await runCli(['worker', 'webhook', '--webhook-allow', '10.0.0.0/99']);
    expect(cli.code).toBe(2);
    expect(cli.output).toContain('invalid --webhook-allow (WEBHOOK_ALLOW) "10.0.0.0/99": "10.0.0.0/99" is not a valid CIDR range');
    expect(cli.output).not.toMatch(/\n\s+at /);
  });

  it('a prefix has a hash tag exactly when every key of every queue under it hashes to one slot', () => {
    const cases: Array<[string, string | undefined]> = [
      ['{bull}', 'bull'],
      ['bull', undefined],
      ['{}bull', undefined],
      ['bull{', undefined],
      ['a{b}c', 'b'],
      ['x}{y}', 'y'],
      ['{a{b}', 'a{b'],
      ['pre:{tenant-1}:bull', 'tenant-1'],
    ];
    const keys = (prefix: string) =>
      ['email', 'webhook-dlq', 'export'].flatMap((q) => ['wait', 'meta', 'events', '1', '1:lock'].map((s) => `${prefix}:${q}:${s}`));
    for (const [prefix, tag] of cases) {
      expect(prefixHashTag(prefix), prefix).toBe(tag);
      // cluster-key-slot applies Redis's own rule: the ground truth for "one slot".
      expect(new Set(keys(prefix).map(keySlot)).size === 1, prefix).toBe(tag !== undefined);
      expect(clusterPrefixProblem(prefix) === undefined, prefix).toBe(tag !== undefined);
    }
  });

  it('hides secret values in errors', () => {
    expect(() => resolveOptions(workerOptions, { smtpUrl: 'http://user:hunter2@mail' })).toThrow(/--smtp-url \(SMTP_URL\) \(value hidden\)/);
  });

  it('never echoes a payload, secret or address it refuses, through the real CLI too', async () => {
    const data = '{"to":"carol@example.com",';
    const cases: Array<[readonly OptionSpec[], string, string]> = [
      [enqueueOptions, 'data', data],
      [enqueueOptions, 'idempotency-key', ' '],
      [workerOptions, 'webhook-secret', ' '],
      [workerOptions, 'smtp-from', ' '],
      [loadgenOptions, 'webhook-target', 'ftp://user:hunter2@x'],
    ];
    for (const [specs, name, value] of cases) {
      expect(() => resolveOptions(specs, { [camel(name)]: value }), name).toThrow(new RegExp(`--${name} \\([A-Z_]+\\) \\(value hidden\\)`));
    }
    const cli = await runCli(['enqueue', 'email', '--data', data]);
    expect(cli.code).toBe(2);
    expect(cli.output).toContain('--data (QUEUELENS_JOB_DATA) (value hidden): expected valid JSON');
    expect(cli.output).not.toContain('carol@');
  });
});
