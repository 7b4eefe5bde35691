// Starts test/fixtures/tcp-proxy.mjs: stall() freezes the link (SIGSTOP), resume() thaws it.
import { spawn } from 'node:child_process';
import { freePort } from './redis-server.js';

export interface TcpProxy {
  port: number;
  stall(): void;
  resume(): void;
  stop(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const port = await freePort();
  const proc = spawn(process.execPath, [new URL('../fixtures/tcp-proxy.mjs', import.meta.url).pathname, String(port), String(targetPort)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => d.toString().includes('LISTENING') && resolve());
    proc.once('exit', (code) => reject(new Error(`tcp proxy exited with ${code}`)));
  });
  return {
    port,
    stall: () => proc.kill('SIGSTOP'),
    resume: () => proc.kill('SIGCONT'),
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGCONT');
      await new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGKILL');
      });
    },
  };
}
