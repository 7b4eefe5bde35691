// Configuration: every option's bad value, by flag and by environment variable, exits 2 naming the option.
import { describe, expect, it } from 'vitest';
import { parse, resolveOptions, type OptionSpec } from '../src/config/options.js';
import { sidecarOptions } from '../src/config/sidecar-config.js';
import { runCli } from './helpers/cli.js';
import { startTestRedis } from './helpers/redis-server.js';

const BAD: Record<string, string> = {
  'redis-url': 'http://127.0.0.1:6379',
  'redis-cluster-nodes': '127.0.0.1',
  port: '70000',
  host: ' ',
  prefixes: 'bu*ll',
  queues: 'a:b',
  'collect-interval': '0',
  'collect-sweep': '-1',
  'collect-sweep-idle': 'never',
  'collect-busy-max': '0.5',
  'shutdown-timeout': '0.5',
  'discovery-interval': 'soon',
  'max-queues': '0',
  'health-max-waiting': '-1',
  'health-max-oldest-age': 'old',
  'health-min-workers': '1.5',
  'events-max-in-flight': '0',
  events: 'maybe',
  'job-name-label': 'sometimes',
  histograms: 'per-job',
  'max-job-names': '0',
  'own-prefix': 'own*',
  'events-lease': '0.5',
  'events-shards': '0',
  'events-retention': 'forever',
  'log-level': 'loud',
  'admin-token': 'short',
  'admin-writes': 'sometimes',
  'trust-proxy': '2',
  backend: 'mysql',
  'database-url': 'mysql://db/app',
  'pg-schema': ' bullmq',
  'pg-own-schema': 'x'.repeat(64),
  'pg-statement-timeout': '0',
};

describe('sidecar configuration', () => {
  it('has a bad-value case for every option', () => {
    expect(Object.keys(BAD).sort()).toEqual(sidecarOptions.map((o) => o.name).sort());
  });

  it('parses valid values and applies defaults', () => {
    const cfg = resolveOptions(sidecarOptions, {
      redisUrl: 'rediss://u:p@h:6380/2',
      port: '9000',
      host: '::',
      prefixes: 'bull, {app}',
      queues: 'email,webhook',
      collectInterval: '0.5',
      discoveryInterval: '60',
      maxQueues: '10',
      logLevel: 'debug',
    });
    expect(cfg.port).toBe(9000);
    expect(cfg.prefixes).toEqual(['bull', '{app}']);
    expect(cfg.queues).toEqual(['email', 'webhook']);
    expect(cfg.collectInterval).toBe(0.5);
    expect(cfg.healthMaxWaiting).toBeUndefined();
  });

  it('event options: a bare --job-name-label means true, the own prefix may not be a watched BullMQ prefix', async () => {
    const { resolveSidecarConfig } = await import('../src/config/sidecar-config.js');
    const defaults = {
      redisUrl: 'redis://h',
      port: '1',
      host: 'h',
      prefixes: 'bull',
      collectInterval: '5',
      discoveryInterval: '60',
      maxQueues: '5',
      logLevel: 'info',
    };
    const base = { ...defaults, events: 'true', maxJobNames: '20', ownPrefix: 'queuelens', eventsLease: '10', eventsRetention: '600' };
    expect(resolveSidecarConfig({ ...base, jobNameLabel: true }).jobNameLabel).toBe(true);
    expect(resolveSidecarConfig({ ...base, jobNameLabel: 'false' }).jobNameLabel).toBe(false);
    expect(() => resolveSidecarConfig({ ...base, prefixes: 'bull,queuelens' })).toThrow(/--own-prefix \(QUEUELENS_OWN_PREFIX\) "queuelens": must differ/);
    const cli = await runCli(['sidecar', '--own-prefix', 'bull']);
    expect(cli.code).toBe(2);
    expect(cli.output).toContain('--own-prefix (QUEUELENS_OWN_PREFIX)');
  });

  it('reports every problem at once and hides URL values', () => {
    expect(() => resolveOptions(sidecarOptions, { redisUrl: 'redis://:hunter2@x', port: 'x', collectInterval: '-1' })).toThrow(
      /--port \(QUEUELENS_PORT\)[\s\S]*--collect-interval/,
    );
    try {
      resolveOptions(sidecarOptions, { redisUrl: 'ftp://:hunter2@x' });
    } catch (err) {
      expect((err as Error).message).toContain('--redis-url (REDIS_URL)');
      expect((err as Error).message).not.toContain('hunter2');
    }
  });

  it('parsers say what is allowed', () => {
    expect(() => parse.port('0')).toThrow('expected a TCP port from 1 to 65535');
    expect(() => parse.seconds()('abc')).toThrow(/seconds/);
    expect(() => parse.list(' , ')).toThrow(/at least one/);
    expect(parse.boolean('yes')).toBe(true);
  });

  for (const opt of sidecarOptions) {
    it(`exits 2 naming --${opt.name} for a bad flag and a bad ${opt.env}`, async () => {
      const viaFlag = await runCli(['sidecar', `--${opt.name}`, BAD[opt.name]!]);
      expect(viaFlag.code).toBe(2);
      expect(viaFlag.output).toContain(`--${opt.name} (${opt.env})`);
      const viaEnv = await runCli(['sidecar'], { [opt.env]: BAD[opt.name] });
      expect(viaEnv.code).toBe(2);
      expect(viaEnv.output).toContain(`--${opt.name} (${opt.env})`);
    });
  }

  it('an empty variable counts as unset where the option has a default', async () => {
    const empty = Object.fromEntries(
      (sidecarOptions as readonly OptionSpec[])
        .filter((o) => o.default !== undefined)
        .map((o) => [o.name.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase()), '']),
    );
    expect(Object.keys(empty)).toContain('redisUrl');
    expect(resolveOptions(sidecarOptions, empty)).toEqual(resolveOptions(sidecarOptions, {}));
    // The real CLI: `REDIS_URL= queuelens dlq list email` is not refused as an invalid URL, and empty
    // QUEUELENS_PREFIX / QUEUELENS_OWN_PREFIX mean the defaults (bull, queuelens) against a real Redis.
    const blankUrl = await runCli(['dlq', 'list', 'email', '--log-level', 'silent'], { REDIS_URL: '' });
    expect(blankUrl.output).not.toContain('invalid --redis-url');
    expect(blankUrl.code).not.toBe(2);
    const redis = await startTestRedis();
    try {
      await redis.client().hset('bull:email-dlq:meta', 'opts.maxLenEvents', '10');
      const blankPrefix = await runCli(['dlq', 'list', 'email', '--redis-url', redis.url, '--log-level', 'silent'], {
        QUEUELENS_PREFIX: '',
        QUEUELENS_OWN_PREFIX: '',
      });
      expect(blankPrefix).toMatchObject({ code: 0 });
      expect(blankPrefix.output).toContain('0 dead-lettered in email-dlq');
    } finally {
      await redis.stop();
    }
  });

  it('exits 2 on an unknown option and 0 on --help listing every variable', async () => {
    expect((await runCli(['sidecar', '--no-such-flag'])).code).toBe(2);
    const help = await runCli(['sidecar', '--help']);
    expect(help.code).toBe(0);
    for (const opt of sidecarOptions) expect(help.output).toContain(opt.env);
  });
});
