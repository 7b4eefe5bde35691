// Every subcommand of `queuelens`, in the order --help lists them.
import type { Command } from 'commander';
import { registerDemo } from './demo.js';
import { registerDlq } from './dlq.js';
import { registerEnqueue } from './enqueue.js';
import { registerLoadgen } from './loadgen.js';
import { registerSidecar } from './sidecar.js';
import { registerTop } from './top.js';
import { registerWorker } from './worker.js';

export const commands: Array<(program: Command) => void> = [registerSidecar, registerWorker, registerEnqueue, registerLoadgen, registerDlq, registerDemo, registerTop];
