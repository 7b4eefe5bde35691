#!/usr/bin/env node
// The `queuelens` command. Each subcommand lives in cli/commands/ and registers itself here.
// First of all: tracing from the OTEL_* variables, so every subcommand run as `npx queuelens …` traces.
import '../tracing/register.js';
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/options.js';
import { PostgresUnreachableError } from '../jobs/postgres-unreachable.js';
import { RedisUnreachableError } from '../redis/connection.js';
import { registerCommands } from './commands/index.js';

// `queuelens top | head`: the reader went away. Nothing is wrong; stop quietly instead of an EPIPE stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const program = new Command('queuelens')
  .description('Observability-first companion for BullMQ: metrics sidecar, traced workers, dead-letter tools')
  .version(version, '-V, --version', 'print the version and exit')
  .showHelpAfterError('(run with --help for every option)')
  .exitOverride();

await registerCommands(program, process.argv);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`queuelens: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof RedisUnreachableError || err instanceof PostgresUnreachableError) {
    process.stderr.write(`queuelens: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  if (err instanceof CommanderError) {
    // --help and --version end here with code 0; usage errors (unknown option, missing argument) exit 2.
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  process.stderr.write(`queuelens: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
}
