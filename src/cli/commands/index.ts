// Every subcommand of `queuelens`, in the order --help lists them.
import type { Command } from 'commander';
import { registerSidecar } from './sidecar.js';

export const commands: Array<(program: Command) => void> = [registerSidecar];
