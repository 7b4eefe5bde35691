// `queuelens demo`: the README's main job. One command brings up, against REDIS_URL (or a private
// redis-server when none answers), the sidecar with its status page, the three workers delivering to local
// SMTP and webhook peers, the load generator's demo mix, and Prometheus with the bundled alerts when it is
// installed; it prints the URLs and stops everything on Ctrl-C.
import { tmpdir } from 'node:os';
import type { Command } from 'commander';
import { demoOptions } from '../../config/demo-config.js';
import { addOptions, resolveOptions } from '../../config/options.js';
import { claimDemoNamespace, DEMO_OWN_PREFIX, DEMO_PREFIX, DemoBusyError, type DemoNamespace } from '../../demo/demo-namespace.js';
import { startDemoStack, type DemoStack } from '../../demo/demo-stack.js';
import { removeStaleDemoDirs } from '../../demo/demo-tmp.js';
import { SCENARIOS } from '../../config/loadgen-config.js';
import { installShutdown } from '../../shutdown/shutdown.js';
import { createLogger } from '../../log/logger.js';
import { safeUrl } from '../../log/redact.js';
import { ensureRedis, NoRedisError } from '../../demo/local-redis.js';
import { ensurePostgres, NoPostgresError } from '../../demo/local-postgres.js';
import { claimPostgresDemoNamespace, DEMO_PG_OWN_SCHEMA, DEMO_PG_SCHEMA } from '../../demo/postgres-demo-namespace.js';

export function registerDemo(program: Command): void {
  const cmd = program
    .command('demo')
    .description(
      'run the whole product on this machine: sidecar and status page, three workers with local SMTP and webhook peers, a load mix, Prometheus with the alerts',
    );
  addOptions(cmd, demoOptions);
  cmd.action(async (raw: Record<string, unknown>) => {
    const cfg = resolveOptions(demoOptions, raw);
    const log = createLogger({ level: cfg.logLevel, name: 'queuelens-demo' });
    process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection (bug): please report it'));
    // What an earlier demo killed before it could clean up left in the temp directory.
    const staleDirs = removeStaleDemoDirs();
    const onPostgres = cfg.backend === 'postgres';
    let redis;
    try {
      // On PostgreSQL, `redis` is the database: the one at DATABASE_URL, else a private server.
      redis = onPostgres ? await ensurePostgres(cfg.databaseUrl, log) : await ensureRedis(cfg.redisUrl, log);
    } catch (err) {
      if (err instanceof NoRedisError || err instanceof NoPostgresError) {
        process.stderr.write(`queuelens demo: ${err.message}\n`);
        process.exit(1);
      }
      throw err;
    }
    // The demo's own corner of this Redis: a developer's queues named email/webhook/export under `bull` stay untouched.
    let ns: DemoNamespace;
    try {
      ns = onPostgres ? await claimPostgresDemoNamespace(redis.url) : await claimDemoNamespace(redis.url);
    } catch (err) {
      process.stderr.write(
        `queuelens demo: ${err instanceof DemoBusyError ? err.message : `cannot use the ${onPostgres ? 'PostgreSQL' : 'Redis'} at ${safeUrl(redis.url)} (${(err as Error).message})`}\n`,
      );
      await redis.close();
      process.exit(1);
    }
    let stack: DemoStack;
    try {
      stack = await startDemoStack({
        redisUrl: redis.url,
        databaseUrl: onPostgres ? redis.url : undefined,
        prefix: DEMO_PREFIX,
        ownPrefix: DEMO_OWN_PREFIX,
        host: cfg.host,
        port: cfg.port,
        rate: cfg.jobsPerSecond,
        prometheusPort: cfg.prometheusPort,
        logLevel: cfg.logLevel,
        log,
      });
    } catch (err) {
      const msg = (err as Error).message;
      process.stderr.write(`queuelens demo: cannot start (${msg})${/EADDRINUSE/.test(msg) ? '; pass --port / QUEUELENS_PORT or --prometheus-port' : ''}\n`);
      await ns.removeKeys().catch(() => undefined);
      await redis.close();
      process.exit(1);
    }
    const mine = onPostgres ? `its schemas ${DEMO_PG_SCHEMA} and ${DEMO_PG_OWN_SCHEMA}` : `keys under ${DEMO_PREFIX}:* and ${DEMO_OWN_PREFIX}:*`;
    // Before the banner: whoever reads 'queuelens demo is running' may press Ctrl-C at once, and a SIGINT that
    // arrives before the handler is installed kills the process with nothing cleaned up.
    installShutdown(
      [
        { name: 'demo', run: () => stack.close() },
        {
          name: 'demo keys',
          run: async () => {
            if (cfg.keep && !redis.private) {
              await ns.release();
              process.stdout.write(
                onPostgres
                  ? `queuelens demo: kept ${mine} in ${safeUrl(redis.url)}\n`
                  : `queuelens demo: kept its keys in ${safeUrl(redis.url)} under ${DEMO_PREFIX}:* and ${DEMO_OWN_PREFIX}:*\n`,
              );
            } else {
              const n = await ns.removeKeys();
              if (!redis.private) process.stdout.write(`queuelens demo: removed its ${n} ${onPostgres ? 'schema(s)' : 'key(s)'} from ${safeUrl(redis.url)}\n`);
            }
          },
        },
        { name: onPostgres ? 'postgres' : 'redis', run: () => redis.close() },
      ],
      { log, timeoutMs: 20_000, watchParent: true },
    );
    const base = stack.sidecarUrl;
    // The copy-paste commands name the Redis in use whichever it is: without it they would talk to REDIS_URL or the
    // default, not to this demo. Credentials are never printed: masked, with a note to pass them in REDIS_URL.
    // A private server's URL holds no secret (its superuser has no password): shown as is, so the commands work.
    const shownUrl = redis.private ? redis.url : safeUrl(redis.url);
    const masked = shownUrl !== redis.url;
    const redisArg = onPostgres
      ? ` --backend postgres --database-url ${shellWord(shownUrl)} --pg-schema ${DEMO_PG_SCHEMA} --pg-own-schema ${DEMO_PG_OWN_SCHEMA}`
      : ` --redis-url ${shellWord(shownUrl)}`;
    const where = redis.private
      ? '(private, removed on exit)'
      : `(yours: the demo writes only ${mine}, ${cfg.keep ? 'kept on exit (--keep)' : 'removed on exit (--keep keeps them)'})`;
    process.stdout.write(
      [
        '',
        'queuelens demo is running',
        `  status page   ${base}/`,
        `  metrics       ${base}/metrics`,
        `  health        ${base}/health`,
        `  JSON API      ${base}/api/queues`,
        onPostgres
          ? '  Bull Board    not on PostgreSQL (the admin routes need Redis)'
          : `  Bull Board    ${base}/admin/queues   (admin token ${stack.adminToken}: log in in the browser, or send "Authorization: Bearer <token>")`,
        stack.prometheus
          ? `  Prometheus    ${stack.prometheus.alertsUrl}   (${stack.prometheus.ruleFiles.length} rule file(s) from alerts/)`
          : cfg.prometheusPort === 0
            ? '  Prometheus    off (--prometheus-port 0)'
            : `  Prometheus    not started: \`prometheus\` is not on PATH (apt-get install -y prometheus) or port ${cfg.prometheusPort} is taken (--prometheus-port)`,
        `  ${onPostgres ? 'PostgreSQL' : 'Redis     '}    ${shownUrl} ${where}`,
        ...(ns.staleRemoved > 0 ? [`                removed ${ns.staleRemoved} ${onPostgres ? 'schema(s)' : 'key(s)'} an earlier demo run left behind`] : []),
        ...(staleDirs > 0 ? [`  Temp files    removed ${staleDirs} directory(ies) an earlier demo run left behind in ${tmpdir()}`] : []),
        `  SMTP sink     ${stack.smtpUrl}   webhook receiver ${stack.webhookUrl}`,
        '',
        `  in a terminal:      npx queuelens top --url ${base}`,
        `  dead letters:       npx queuelens dlq list webhook${onPostgres ? '' : ` --prefix ${DEMO_PREFIX} --own-prefix ${DEMO_OWN_PREFIX}`}${redisArg}`,
        `  make alerts fire:   npx queuelens loadgen${onPostgres ? '' : ` --prefix ${DEMO_PREFIX}`}${redisArg} --webhook-target ${stack.webhookUrl} --scenario <${SCENARIOS.filter((s) => s !== 'mixed' && s !== 'demo').join('|')}>`,
        ...(masked
          ? [
              onPostgres
                ? '  (the database URL is shown masked: set DATABASE_URL to the real one, credentials included, and leave out --database-url)'
                : '  (the Redis URL is shown masked: set REDIS_URL to the real one, credentials included, and leave out --redis-url)',
            ]
          : []),
        '  Ctrl-C to stop',
        '',
      ].join('\n'),
    );
  });
}

/** `s` as one POSIX shell word: quoted when it holds anything a shell would expand or split (a masked `***`). */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
