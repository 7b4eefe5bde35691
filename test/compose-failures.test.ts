// Issue 14: the compose stack's failure scenarios fire the same alerts as `queuelens demo`. No Docker engine runs
// here, so the test reads docker-compose.yml and checks it wires the stack as the local demo is wired (the same
// load mix, the same worker timings, email and webhook jobs delivered to the demo's own peers), then runs the
// demo-peers service exactly as compose starts it (the real entry point, its compose arguments, loopback ports)
// and delivers the jobs the compose loadgen plans: every job built to fail is refused, every other one accepted.
import { createTransport } from 'nodemailer';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseDocument } from 'yaml';
import { resolveLoadgenConfig } from '../src/config/loadgen-config.js';
import { DEMO_SCENARIO, DEMO_WORKER_TIMINGS } from '../src/demo/demo-stack.js';
import { scenarioFor, type PlannedJob } from '../src/loadgen/loadgen-scenarios.js';
import { spawnCli, type CliProcess } from './helpers/cli.js';
import { freePort } from './helpers/redis-server.js';

const root = fileURLToPath(new URL('..', import.meta.url));
interface Service {
  command?: string[];
  environment?: Record<string, string>;
}
const services = (
  parseDocument(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }).toJS({ maxAliasCount: 100 }) as { services: Record<string, Service> }
).services;
const env = (service: string): Record<string, string> => services[service]?.environment ?? {};
const arg = (service: string, flag: string): string => {
  const cmd = services[service]?.command ?? [];
  return cmd[cmd.indexOf(flag) + 1]!;
};

describe('docker-compose.yml wires the stack as the local demo', () => {
  test("the loadgen runs the demo's mix, and the workers its lock and stall timings", () => {
    expect(env('loadgen').LOADGEN_SCENARIO).toBe(DEMO_SCENARIO);
    for (const w of ['worker-email', 'worker-webhook', 'worker-export']) {
      expect(env(w).QUEUELENS_LOCK_DURATION, w).toBe(DEMO_WORKER_TIMINGS.lockDuration);
      expect(env(w).QUEUELENS_STALLED_INTERVAL, w).toBe(DEMO_WORKER_TIMINGS.stalledInterval);
    }
  });

  test('mail and webhooks go to the demo-peers service, on the ports it listens on', () => {
    expect(services['demo-peers']?.command?.[0]).toBe('demo-peers');
    const smtpPort = arg('demo-peers', '--smtp-port');
    const httpPort = arg('demo-peers', '--http-port');
    for (const w of ['worker-email', 'worker-export']) {
      const smtp = new URL(env(w).SMTP_URL!);
      expect([smtp.hostname, smtp.port], w).toEqual(['demo-peers', smtpPort]);
    }
    const target = new URL(env('loadgen').LOADGEN_WEBHOOK_TARGET!);
    expect([target.hostname, target.port]).toEqual(['demo-peers', httpPort]);
    expect(env('worker-webhook').WEBHOOK_ALLOW).toBe('demo-peers');
  });
});

describe('the demo-peers service as compose runs it', () => {
  let peers: CliProcess;
  let smtpPort: number;
  let httpPort: number;
  beforeAll(async () => {
    smtpPort = await freePort();
    httpPort = await freePort();
    // Compose's command line, but on loopback and free ports instead of 0.0.0.0:1025/8080.
    const args = [...services['demo-peers']!.command!];
    args[args.indexOf('--host') + 1] = '127.0.0.1';
    args[args.indexOf('--smtp-port') + 1] = String(smtpPort);
    args[args.indexOf('--http-port') + 1] = String(httpPort);
    peers = spawnCli(args, { LOG_LEVEL: 'info' });
    for (let i = 0; !peers.output().includes('demo peers listening'); i++) {
      if (i > 300 || peers.proc.exitCode !== null) throw new Error(`demo-peers did not start:\n${peers.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);
  afterAll(async () => {
    peers?.proc.kill('SIGTERM');
    await peers?.exited;
  });

  test('refuses exactly the jobs the compose loadgen builds to fail, and accepts the rest', async () => {
    const target = new URL(env('loadgen').LOADGEN_WEBHOOK_TARGET!);
    target.hostname = '127.0.0.1';
    target.port = String(httpPort);
    const cfg = resolveLoadgenConfig({ scenario: env('loadgen').LOADGEN_SCENARIO, webhookTarget: target.toString() });
    const scenario = scenarioFor(cfg.scenario, cfg);
    let seed = 1;
    const random = (): number => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    const jobs: PlannedJob[] = Array.from({ length: 150 }, (_, n) => scenario.plan(n, random));
    const mail = createTransport({ pool: true, host: '127.0.0.1', port: smtpPort, secure: false, ignoreTLS: true });
    const seen = { mailFailed: 0, mailOk: 0, hookFailed: 0, hookOk: 0 };
    for (const job of jobs) {
      if (job.queue === 'email') {
        const to = (job.data as { to: string }).to;
        const sent = await mail.sendMail({ from: 'demo@example.com', to, subject: 't', text: 't' }).then(
          () => true,
          (err: { responseCode?: number }) => {
            expect(err.responseCode, to).toBe(550);
            return false;
          },
        );
        expect(sent, `${to} (failing: ${job.failing})`).toBe(!job.failing);
        seen[sent ? 'mailOk' : 'mailFailed'] += 1;
      } else if (job.queue === 'webhook') {
        const url = new URL((job.data as { url: string }).url);
        expect(url.host).toBe(`127.0.0.1:${httpPort}`);
        // ?flaky answers 503 now and then and succeeds on a retry; a job built to fail fails on every attempt.
        url.searchParams.delete('flaky');
        const res = await fetch(url, { method: 'POST', body: '{}' });
        expect(res.status >= 500, url.toString()).toBe(job.failing);
        seen[job.failing ? 'hookFailed' : 'hookOk'] += 1;
      }
    }
    mail.close();
    // The mix really sends both kinds of failure through both peers.
    for (const [k, v] of Object.entries(seen)) expect(v, k).toBeGreaterThan(0);
  });
});
