// Drives a program in a real terminal: a private tmux server (own socket), send-keys to type, capture-pane to read.
import { execFileSync, spawnSync } from 'node:child_process';

export interface TmuxSession {
  send(...keys: string[]): void;
  /** The visible screen as plain text. */
  screen(): string;
  kill(): void;
}

export function startTmux(command: string, size = { width: 150, height: 30 }): TmuxSession {
  if (spawnSync('tmux', ['-V']).error) throw new Error('tmux is not on PATH. The terminal tests need it: apt-get install -y tmux');
  const socket = `queuelens-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const tmux = (...args: string[]) => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  tmux('new-session', '-d', '-s', 'top', '-x', String(size.width), '-y', String(size.height), command);
  return {
    send: (...keys) => void tmux('send-keys', '-t', 'top', ...keys),
    screen: () => tmux('capture-pane', '-p', '-t', 'top'),
    kill() {
      spawnSync('tmux', ['-L', socket, 'kill-server']);
    },
  };
}
