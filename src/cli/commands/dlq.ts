// `queuelens dlq list|show|redrive|purge <queue>`: inspect and act on dead-lettered jobs.
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { addOptions, ConfigError } from '../../config/options.js';
import { dlqOptions, resolveDlqConfig, resolveSince, type DlqConfig } from '../../config/dlq-config.js';
import { Producer } from '../../jobs/producer.js';
import { dlqName } from '../../jobs/queue-defaults.js';
import { redactString, redactValue } from '../../log/redact.js';
import { assertRedisReachable, createRedis } from '../../redis/connection.js';
import { shutdownTracing } from '../../tracing/state.js';
import { postgresTarget } from '../../config/backend-options.js';
import {
  DeadLetters,
  isDeadLetterRecord,
  NOT_A_DEAD_LETTER,
  type DeadLetterQueue,
  type RedriveOutcome,
  type Selection,
} from '../../dead-letters/dead-letters.js';
import { PostgresDeadLetters } from '../../dead-letters/postgres-dead-letters.js';
import { preparePostgres } from '../../jobs/postgres-store.js';

type Action = 'list' | 'show' | 'redrive' | 'purge';

const DESCRIPTIONS: Record<Action, string> = {
  list: 'list dead-lettered jobs of <queue>, newest first',
  show: 'print dead-lettered jobs in full (personal data and secrets masked); needs --id',
  redrive: 're-enqueue dead-lettered jobs to <queue> with fresh attempts; idempotent',
  purge: 'delete dead-lettered jobs for good',
};

/** A progress bar pays off only when a human watches a long run. */
const BAR_THRESHOLD = 100;

export function registerDlq(program: Command): void {
  const dlq = program.command('dlq').description('inspect, redrive and purge dead-letter queues (<queue>-dlq)');
  for (const action of Object.keys(DESCRIPTIONS) as Action[]) {
    const cmd = dlq.command(action).description(DESCRIPTIONS[action]).argument('<queue>', 'source queue, e.g. email (its DLQ is email-dlq)');
    addOptions(cmd, dlqOptions);
    cmd.action(async (queue: string, raw: Record<string, unknown>) => {
      const cfg = resolveDlqConfig(raw);
      if (queue.includes(':') || queue.endsWith('-dlq'))
        throw new ConfigError(`invalid <queue> ${JSON.stringify(queue)}: name the source queue (email, not email-dlq)`);
      await runDlq(action, queue, cfg);
    });
  }
}

function selection(action: Action, cfg: DlqConfig): Selection {
  const sel: Selection = { ids: cfg.id };
  if (action === 'list') return { ...sel, limit: cfg.limit };
  if (action === 'show' && !cfg.id) throw new ConfigError('missing --id (QUEUELENS_DLQ_ID): which dead-lettered jobs to show');
  if ((action === 'redrive' || action === 'purge') && !cfg.id && cfg.since === undefined && !cfg.all) {
    throw new ConfigError(`${action} needs a selection: --id (QUEUELENS_DLQ_ID), --since (QUEUELENS_DLQ_SINCE) or --all (QUEUELENS_DLQ_ALL)`);
  }
  return sel;
}

async function runDlq(action: Action, queue: string, cfg: DlqConfig): Promise<void> {
  const sel = selection(action, cfg);
  // Listing, showing and dry runs write nothing: no Queue object here may (re)write a queue's meta, which would
  // create a phantom `<queue>-dlq` for a typo and reset a producer's stream retention.
  const readOnly = action === 'list' || action === 'show' || cfg.dryRun === true;
  const store = await openStore(action, queue, cfg, readOnly);
  if (!store) {
    process.exitCode = 1;
    return;
  }
  const { dead, closeStore } = store;
  const postgres = postgresTarget(cfg);
  const producer = readOnly
    ? undefined
    : new Producer(postgres ? { postgres } : { redisUrl: cfg.redisUrl, clusterNodes: cfg.redisClusterNodes, prefix: cfg.prefix });
  const out = (line: string) => process.stdout.write(`${line}\n`);
  try {
    // Dead letters are stamped by the store's clock; `--since 2h` counts back from it too, whatever this machine's clock says.
    sel.since = resolveSince(cfg.since, await dead.now());
    const jobs = await dead.list(sel);
    // An id given that matched nothing, neither as a dead-letter id nor as the source job's id.
    const unmatched = (cfg.id ?? []).filter((id) => !jobs.some((j) => j.id === id || (isDeadLetterRecord(j.data) && j.data.source.jobId === id)));
    if (action === 'list') {
      out(`${await dead.count()} dead-lettered in ${queue}-dlq; showing ${jobs.length}`);
      for (const j of jobs) {
        const r = j.data;
        if (!isDeadLetterRecord(r)) out([j.id, j.name, NOT_A_DEAD_LETTER].join('\t'));
        else out([j.id, j.name, `attempts=${r.attemptsMade}`, new Date(r.deadLetteredAt).toISOString(), redactString(r.failedReason).slice(0, 120)].join('\t'));
      }
    } else if (action === 'show') {
      for (const j of jobs) out(JSON.stringify({ id: j.id, name: j.name, ...(redactValue(j.data) as object) }, null, 2));
      if (unmatched.length > 0) {
        out(
          `not found in ${queue}-dlq: ${unmatched.join(', ')} (neither a dead-letter id, as \`dlq list ${queue}\` prints, nor a dead-lettered job's original id)`,
        );
        process.exitCode = 1;
      }
    } else if (action === 'purge') {
      const n = await dead.purge(jobs, cfg.dryRun);
      out(`${cfg.dryRun ? 'would purge' : 'purged'} ${n} from ${queue}-dlq`);
      if (unmatched.length > 0) {
        out(`not found in ${queue}-dlq: ${unmatched.join(', ')}`);
        process.exitCode = 1;
      }
    } else {
      // A dry run validates against the queue without a Queue object that would write its meta.
      const into = producer?.queue(queue) ?? dead.readOnlyQueue(queue);
      const bar =
        jobs.length >= BAR_THRESHOLD
          ? new SingleBar({ stream: process.stderr, noTTYOutput: true, notTTYSchedule: 1000, format: 'redrive [{bar}] {value}/{total} {eta}s left' })
          : undefined;
      bar?.start(jobs.length, 0);
      const tally: Record<RedriveOutcome['status'], number> = { redriven: 0, 'would-redrive': 0, 'not-found': 0, invalid: 0, conflict: 0 };
      for (const j of jobs) {
        const r = await dead.redrive(into, j, cfg.dryRun);
        tally[r.status] += 1;
        if (r.status !== 'redriven') out(`${r.dlqJobId}\t${r.status}${r.newJobId ? `\t-> ${r.newJobId}` : ''}${r.reason ? `\t${r.reason}` : ''}`);
        bar?.increment();
      }
      for (const id of unmatched) {
        tally['not-found'] += 1;
        out(`${id}\tnot-found (already redriven or purged?)`);
      }
      bar?.stop();
      out(JSON.stringify(tally));
      // Anything asked for and not (to be) redriven makes the command fail, so scripts notice.
      if (tally['not-found'] + tally.invalid + tally.conflict > 0) process.exitCode = 1;
    }
  } finally {
    await dead.close();
    await producer?.close();
    closeStore();
    await shutdownTracing();
  }
}

/**
 * The dead-letter queue of `queue` on the configured store, or undefined (said on stderr) when a redrive or purge names
 * a DLQ that does not exist: checked before any Queue object exists, because constructing one that may write writes
 * its meta, which would turn a typo into a phantom `<queue>-dlq` that top and /metrics show. A dry run answers what
 * the real run would.
 */
async function openStore(
  action: Action,
  queue: string,
  cfg: DlqConfig,
  readOnly: boolean,
): Promise<{ dead: DeadLetterQueue; closeStore: () => void } | undefined> {
  const mustExist = action === 'redrive' || action === 'purge';
  const missing = (where: string) =>
    process.stderr.write(
      `queuelens: no dead-letter queue ${dlqName(queue)} ${where}: nothing to ${action} (check the queue name and ${where.includes('schema') ? '--pg-schema' : '--prefix'})\n`,
    );
  const postgres = postgresTarget(cfg);
  if (postgres) {
    await preparePostgres(postgres);
    if (mustExist && !(await PostgresDeadLetters.exists(postgres, queue))) {
      missing(`in schema ${JSON.stringify(postgres.schema)}`);
      return undefined;
    }
    return { dead: new PostgresDeadLetters({ target: postgres, queue, skipMetasUpdate: readOnly }), closeStore: () => undefined };
  }
  const target = { url: cfg.redisUrl, clusterNodes: cfg.redisClusterNodes };
  await assertRedisReachable(target);
  const connection = createRedis({ ...target, name: 'queuelens:dlq', maxRetriesPerRequest: null });
  if (mustExist && !(await DeadLetters.exists(connection, cfg.prefix, queue))) {
    connection.disconnect();
    missing(`under prefix ${JSON.stringify(cfg.prefix)}`);
    return undefined;
  }
  const dead = new DeadLetters({ connection, prefix: cfg.prefix, ownPrefix: cfg.ownPrefix, queue, skipMetasUpdate: readOnly });
  return { dead, closeStore: () => connection.disconnect() };
}
