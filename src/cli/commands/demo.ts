// `queuelens demo`: the README's main job. Brings up a Redis (or uses REDIS_URL), a steady demo workload and the
// sidecar, prints the URLs, and shuts everything down on Ctrl-C.
import type { Command } from 'commander';
import { logLevelOption, redisUrlOption } from '../../config/common.js';
import { addOptions, option, parse, resolveOptions } from '../../config/options.js';
import { resolveSidecarConfig } from '../../config/sidecar-config.js';
import { installShutdown } from '../../lifecycle/shutdown.js';
import { createLogger } from '../../log/logger.js';
import { safeUrl } from '../../log/redact.js';
import { ensureRedis, NoRedisError } from '../../redis/local-redis.js';
import { createSidecar } from '../../sidecar/create-sidecar.js';

const demoOptions = [
  redisUrlOption,
  option({ name: 'port', env: 'QUEUELENS_PORT', arg: '<port>', description: 'sidecar HTTP port', default: '9487', parse: parse.port }),
  option({ name: 'host', env: 'QUEUELENS_HOST', arg: '<host>', description: 'address the sidecar listens on', default: '127.0.0.1', parse: parse.string }),
  option({ name: 'jobs-per-second', env: 'QUEUELENS_DEMO_RATE', arg: '<n>', description: 'demo jobs enqueued per second', default: '8', parse: parse.number({ min: 0.1, max: 10_000 }) }),
  logLevelOption,
] as const;

export function registerDemo(program: Command): void {
  const cmd = program.command('demo').description('run the demo: a Redis (private if none answers), a steady workload on email/webhook/export, and the sidecar');
  addOptions(cmd, demoOptions);
  cmd.action(async (raw: Record<string, unknown>) => {
    const cfg = resolveOptions(demoOptions, raw);
    const log = createLogger({ level: cfg.logLevel, name: 'queuelens-demo' });
    let redis;
    try {
      redis = await ensureRedis(cfg.redisUrl, log);
    } catch (err) {
      if (err instanceof NoRedisError) {
        process.stderr.write(`queuelens demo: ${err.message}\n`);
        process.exit(1);
      }
      throw err;
    }
    // Loaded here, not at the top: every subcommand imports this file, and BullMQ would add ~5 MB to the
    // sidecar's RSS (bench/collector.ts) for code it never runs.
    const { startDemoTraffic } = await import('../../demo/demo-traffic.js');
    const traffic = startDemoTraffic(redis.url, log, { jobsPerSecond: cfg.jobsPerSecond });
    const sidecarConfig = resolveSidecarConfig({
      redisUrl: redis.url,
      port: String(cfg.port),
      host: cfg.host,
      prefixes: 'bull',
      collectInterval: '2',
      discoveryInterval: '10',
      maxQueues: '5000',
      logLevel: cfg.logLevel,
    });
    const sidecar = await createSidecar(sidecarConfig, log);
    try {
      await sidecar.app.listen({ port: cfg.port, host: cfg.host });
    } catch (err) {
      process.stderr.write(`queuelens demo: cannot listen on ${cfg.host}:${cfg.port} (${(err as Error).message}); pass --port or QUEUELENS_PORT\n`);
      await Promise.allSettled([sidecar.close(), traffic.stop()]);
      await redis.close();
      process.exit(1);
    }
    await sidecar.start();
    const base = `http://${cfg.host === '0.0.0.0' ? '127.0.0.1' : cfg.host}:${cfg.port}`;
    process.stdout.write(
      [
        '',
        'queuelens demo is running',
        `  Redis     ${safeUrl(redis.url)}${redis.private ? ' (private, removed on exit)' : ''}`,
        `  status    ${base}/`,
        `  metrics   ${base}/metrics`,
        `  health    ${base}/health`,
        `  terminal  npx queuelens top --url ${base}`,
        '  Ctrl-C to stop',
        '',
      ].join('\n'),
    );
    installShutdown(
      [
        { name: 'sidecar', run: () => sidecar.close() },
        { name: 'traffic', run: () => traffic.stop() },
        { name: 'redis', run: () => redis.close() },
      ],
      { log, timeoutMs: 10_000 },
    );
  });
}
