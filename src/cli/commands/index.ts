// Every subcommand of `queuelens`, in the order --help lists them. Each is loaded on demand: a process runs one
// subcommand, and the sidecar should not carry the workers' dependencies (BullMQ, zod, nodemailer, ...).
import type { Command } from 'commander';

type Register = (program: Command) => void;

export const commands: Record<string, () => Promise<Register>> = {
  sidecar: async () => (await import('./sidecar.js')).registerSidecar,
  worker: async () => (await import('./worker.js')).registerWorker,
  enqueue: async () => (await import('./enqueue.js')).registerEnqueue,
  loadgen: async () => (await import('./loadgen.js')).registerLoadgen,
  dlq: async () => (await import('./dlq.js')).registerDlq,
  demo: async () => (await import('./demo.js')).registerDemo,
  top: async () => (await import('./top.js')).registerTop,
  'demo-peers': async () => (await import('./demo-peers.js')).registerDemoPeers,
};

/** Registers the subcommand named first on the command line, or all of them (help, typos, no subcommand). */
export async function registerCommands(program: Command, argv: readonly string[]): Promise<void> {
  const named = argv[2] !== undefined && Object.hasOwn(commands, argv[2]) ? [argv[2]] : Object.keys(commands);
  for (const register of await Promise.all(named.map((name) => commands[name]!()))) register(program);
}
