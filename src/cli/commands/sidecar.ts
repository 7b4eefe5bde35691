// `queuelens sidecar`: the Prometheus exporter process.
import type { Command } from 'commander';
import { addOptions } from '../../config/options.js';
import { resolveSidecarConfig, sidecarOptions } from '../../config/sidecar-config.js';
import { installShutdown } from '../../shutdown/shutdown.js';
import { createLogger } from '../../log/logger.js';
import { createSidecar } from '../../sidecar/create-sidecar.js';

export function registerSidecar(program: Command): void {
  const cmd = program
    .command('sidecar')
    .description('export BullMQ queue metrics from Redis or PostgreSQL to Prometheus on /metrics, with /health, /readyz and /livez');
  addOptions(cmd, sidecarOptions);
  cmd.action(async (raw: Record<string, unknown>) => {
    const config = resolveSidecarConfig(raw);
    const log = createLogger({ level: config.logLevel, name: 'queuelens-sidecar' });
    process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection (bug): please report it'));

    const sidecar = await createSidecar(config, log);
    // Installed before listening and starting, so a SIGTERM during a slow start still shuts down in order.
    installShutdown([{ name: 'sidecar', run: () => sidecar.close() }], { log, timeoutMs: config.shutdownTimeout * 1000 });
    try {
      await sidecar.app.listen({ port: config.port, host: config.host });
    } catch (err) {
      log.fatal({ err: (err as Error).message, port: config.port, host: config.host }, 'cannot listen; choose another --port / QUEUELENS_PORT');
      await sidecar.close();
      process.exit(1);
    }
    log.info({ url: `http://${config.host}:${config.port}/metrics` }, 'serving metrics');
    await sidecar.start();
  });
}
