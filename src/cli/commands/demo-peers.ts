// `queuelens demo-peers`: the local demo's SMTP sink and webhook receiver on their own, so docker-compose.yml
// delivers to the same peers as `queuelens demo`, and its jobs built to fail fail the same way and fire the
// same alerts (mail to reject-* refused with 550, webhook URLs with ?status=500 answered 500).
import type { Command } from 'commander';
import { demoPeersOptions } from '../../config/demo-config.js';
import { addOptions, resolveOptions } from '../../config/options.js';
import { startDemoPeers } from '../../demo/demo-peers.js';
import { installShutdown } from '../../shutdown/shutdown.js';
import { createLogger } from '../../log/logger.js';

export function registerDemoPeers(program: Command): void {
  const cmd = program
    .command('demo-peers')
    .description("run the demo's SMTP sink and webhook receiver, which fail on purpose for the load generator's failing jobs");
  addOptions(cmd, demoPeersOptions);
  cmd.action(async (raw: Record<string, unknown>) => {
    const cfg = resolveOptions(demoPeersOptions, raw);
    const log = createLogger({ level: cfg.logLevel, name: 'queuelens-demo-peers' });
    const peers = await startDemoPeers({ host: cfg.host, smtpPort: cfg.smtpPort, httpPort: cfg.httpPort });
    installShutdown([{ name: 'peers', run: () => peers.close() }], { log });
    log.info({ smtp: peers.smtpUrl, webhook: peers.webhookUrl }, 'demo peers listening');
  });
}
