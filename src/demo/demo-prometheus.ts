// Starts a private Prometheus for the demo when the `prometheus` binary is on PATH: it scrapes the demo
// sidecar every few seconds with the bundled alert rules (alerts/) loaded, on a loopback port, with its data in
// a temporary directory removed on close. Absent binary or a failed start: the demo runs without it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { watchChild } from '../util/watch-child.js';
import type { Logger } from '../log/logger.js';
import { demoTempDir } from './demo-tmp.js';

const ALERTS_DIR = fileURLToPath(new URL('../../alerts/', import.meta.url));

export interface DemoPrometheus {
  url: string;
  /** The alerts page of the Prometheus actually started: `/alerts`, or `/classic/alerts` on builds without the new UI (Debian's). */
  alertsUrl: string;
  /** Rule files loaded from alerts/. */
  ruleFiles: string[];
  close(): Promise<void>;
}

export async function startDemoPrometheus(o: {
  target: string;
  port: number;
  job: string;
  log: Logger;
  intervalSeconds?: number;
}): Promise<DemoPrometheus | undefined> {
  if (spawnSync('prometheus', ['--version']).error) return undefined;
  const dir = demoTempDir('prometheus');
  const ruleFiles = existsSync(ALERTS_DIR)
    ? readdirSync(ALERTS_DIR)
        .filter((f) => /\.ya?ml$/.test(f))
        .map((f) => join(ALERTS_DIR, f))
    : [];
  const every = `${o.intervalSeconds ?? 5}s`;
  const config = [
    'global:',
    `  scrape_interval: ${every}`,
    `  evaluation_interval: ${every}`,
    'rule_files:',
    ...(ruleFiles.length > 0 ? ruleFiles.map((f) => `  - ${JSON.stringify(f)}`) : ['  []']),
    'scrape_configs:',
    `  - job_name: ${JSON.stringify(o.job)}`,
    '    static_configs:',
    `      - targets: [${JSON.stringify(o.target)}]`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), config);
  const url = `http://127.0.0.1:${o.port}`;
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${o.port}`,
      '--log.level=warn',
    ],
    // Own process group: Ctrl-C in the terminal reaches the demo, which stops Prometheus after the sidecar.
    { stdio: 'ignore', detached: true },
  );
  child.unref();
  watchChild(child, dir);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.ref(); // as local-redis.ts close(): else the process may exit before Prometheus and its directory are gone
      await new Promise<void>((resolve) => {
        const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
        kill.unref();
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ready = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      o.log.warn({ port: o.port }, 'prometheus did not start; the demo runs without it');
      await stop();
      return undefined;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, alertsUrl: await alertsPage(url), ruleFiles, close: stop };
}

/** Asks the running Prometheus which alerts page it serves, rather than guessing from a version. */
async function alertsPage(url: string): Promise<string> {
  for (const path of ['/alerts', '/classic/alerts']) {
    const ok = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(5000), redirect: 'follow' }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return `${url}${path}`;
  }
  return `${url}/`;
}
