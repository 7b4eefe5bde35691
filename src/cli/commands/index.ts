// Every subcommand of `queuelens`, in the order --help lists them.
import type { Command } from 'commander';
import { registerDemo } from './demo.js';
import { registerSidecar } from './sidecar.js';
import { registerTop } from './top.js';

export const commands: Array<(program: Command) => void> = [registerSidecar, registerDemo, registerTop];
