// Owns export jobs: streams rows from a source into CSV or NDJSON under EXPORT_DIR in constant memory
// (fixed-size chunks, one write each), into a temp file of the attempt's own that is published only on success and
// never over another file, under a size cap, reporting progress, and finally enqueueing the export-ready email
// inside the same trace.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { constants, copyFile, link, mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { context, SpanKind } from '@opentelemetry/api';
import { UnrecoverableError } from 'bullmq';
import { stringify } from 'csv-stringify/sync';
import type { Producer } from '../jobs/producer.js';
import { processAlive } from '../util/pid.js';
import { withSpan } from '../tracing/spans.js';
import type { Processor } from './create-worker.js';
import { builtinSources, EXPORT_COLUMNS, inChunks, type ExportSource } from './export-source.js';

export interface ExportProcessorOptions {
  dir: string;
  /** Enqueues the export-ready email; without it no email is sent. */
  producer?: Producer;
  sources?: Record<string, ExportSource>;
  /** Rows per chunk: one write and one span each. Small chunks keep RSS flat (1,000 measured best for 1M rows). */
  chunkRows?: number;
  /** Largest export file in bytes (EXPORT_MAX_BYTES); default 1 GiB. */
  maxBytes?: number;
}

const DEFAULT_MAX_BYTES = 1024 ** 3;

export interface ExportResult {
  file: string;
  rows: number;
  bytes: number;
  sha256: string;
}

/**
 * `.<name>.<host tag>.<pid>.<uuid>.tmp`: the host tag (a hash of the host name: names may hold dots) and pid let a
 * start-up tell the temp files of a killed predecessor on this host from those of a live writer, here or on another
 * host sharing the directory.
 */
const TEMP_NAME = /^\..+\.([0-9a-f]{8})\.(\d+)\.[0-9a-f-]{36}\.tmp$/;
/** Any export temp file, this naming or the older one without a host tag (`.<name>.<pid>.<uuid>.tmp`). */
const ANY_TEMP_NAME = /^\..+\.\d+\.[0-9a-f-]{36}\.tmp$/;
/** Temp files of the older naming, and of another host, untouched this long are abandoned. */
const ABANDONED_TEMP_MS = 3_600_000;

function hostTag(): string {
  return createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
}

function tempName(file: string): string {
  return `.${file}.${hostTag()}.${process.pid}.${randomUUID()}.tmp`;
}

/**
 * Removes the temp files of exports that never finished because their process died (SIGKILL, OOM, a node restart)
 * before it could remove them; returns how many. Run once at start-up, before this process writes any: a temp file
 * of this host whose pid is no longer alive (or is this process's own: a restarted container often gets the same pid)
 * is removed at once; any other (another host's, the older naming) once nobody has written it for an hour, as a live
 * writer writes every chunk.
 */
export async function removeStaleExportTemps(dir: string, now = Date.now()): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  const here = hostTag();
  let removed = 0;
  for (const name of names) {
    if (!ANY_TEMP_NAME.test(name)) continue;
    const path = join(dir, name);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) continue;
    const m = TEMP_NAME.exec(name);
    const pid = Number(m?.[2]);
    const deadHere = m?.[1] === here && (pid === process.pid || !processAlive(pid));
    if (!deadHere && now - st.mtimeMs <= ABANDONED_TEMP_MS) continue;
    await rm(path, { force: true });
    removed += 1;
  }
  return removed;
}

export function exportProcessor(opts: ExportProcessorOptions): { process: Processor<'export'> } {
  const sources = { ...builtinSources, ...opts.sources };
  const chunkRows = opts.chunkRows ?? 1_000;
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;

  const run: Processor<'export'> = async (job, data, ctx) => {
    const source = sources[data.source];
    if (!source) throw new UnrecoverableError(`unknown export source ${JSON.stringify(data.source)}; known: ${Object.keys(sources).join(', ')}`);
    const file = data.fileName ?? `export-${String(job.id).replace(/[^A-Za-z0-9._-]/g, '_')}.${data.format}`;
    await mkdir(opts.dir, { recursive: true });
    const final = join(opts.dir, file);
    // Dot-prefixed, so readers listing the directory never see a half-written export; unique to this attempt, as
    // concurrent jobs (and processes) may name the same file.
    const tmp = join(opts.dir, tempName(file));
    const hash = createHash('sha256');
    const fh = await open(tmp, 'w');
    let rows = 0;
    let bytes = 0;
    let lastPct = -1;
    try {
      // Strings go to the hash and the file as they are: no Buffer copy of every chunk.
      const write = async (text: string) => {
        bytes += Buffer.byteLength(text);
        if (bytes > maxBytes) throw new UnrecoverableError(`export ${file} would exceed EXPORT_MAX_BYTES (${maxBytes} bytes); nothing was written`);
        hash.update(text, 'utf8');
        await fh.write(text);
      };
      if (data.format === 'csv') await write(stringify([EXPORT_COLUMNS as unknown as string[]]));
      let index = 0;
      for await (const batch of inChunks(source({ rows: data.rows }), chunkRows)) {
        await withSpan(ctx.trace, 'export chunk', SpanKind.INTERNAL, { 'queuelens.export.chunk': index, 'queuelens.export.rows': batch.length }, async () => {
          await write(
            data.format === 'csv'
              ? stringify(batch, { columns: EXPORT_COLUMNS as unknown as string[] })
              : `${batch.map((r) => JSON.stringify(r)).join('\n')}\n`,
          );
        });
        index += 1;
        rows += batch.length;
        const pct = data.rows === 0 ? 100 : Math.floor((rows / data.rows) * 100);
        if (pct !== lastPct) {
          lastPct = pct;
          await job.updateProgress(pct);
        }
      }
      await fh.sync();
      await fh.close();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw err;
    }
    const result: ExportResult = { file, rows, bytes, sha256: hash.digest('hex') };
    try {
      await publish(tmp, final, result.sha256);
    } finally {
      await rm(tmp, { force: true });
    }
    ctx.log.info({ file, rows, bytes }, 'export written');
    const { producer } = opts;
    const to = data.notify;
    if (to && producer) {
      // Keyed by the export job, so a retry after this point does not send a second email. Under the export's
      // consumer span: the email's `add`, and so the email job, join the export's trace.
      await context.with(ctx.trace, () =>
        producer.enqueueEmail(
          { template: 'export-ready', to, vars: { file, rows, sha256: result.sha256 } },
          { idempotencyKey: `export-ready:${job.queueName}:${job.id}` },
        ),
      );
    }
    return result;
  };
  return { process: run };
}

/**
 * Puts the finished temp file in place under its final name, never over an existing file: a file name is written
 * once. When the name is taken by the same content (this job's own earlier attempt, or an identical export) the
 * export is done; by other content it fails for good, so no completed job ever reports a file that is not on disk.
 * A hard link is atomic and refuses an existing name; without hard links, an exclusive copy.
 */
async function publish(tmp: string, final: string, sha256: string): Promise<void> {
  try {
    await link(tmp, final);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EXDEV' || code === 'ENOSYS') {
      try {
        await copyFile(tmp, final, constants.COPYFILE_EXCL);
        return;
      } catch (copyErr) {
        if ((copyErr as NodeJS.ErrnoException).code !== 'EEXIST') {
          // The exclusive copy created the file and failed part-way (a full disk): no half export under its name.
          await rm(final, { force: true });
          throw copyErr;
        }
      }
    } else if (code !== 'EEXIST') {
      throw err;
    }
  }
  if ((await fileSha256(final)) === sha256) return;
  throw new UnrecoverableError(
    `${basename(final)} already exists in the export directory with other content; an export file name is written once: choose another fileName`,
  );
}

function fileSha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}
