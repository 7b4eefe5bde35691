// Owns where export rows come from: a pluggable registry of row sources with a deterministic synthetic
// one built in (the same row count always gives byte-identical files, which tests and benchmarks rely on).

export type ExportRow = Record<string, string | number | boolean | null>;

/** Yields rows lazily; the export processor pulls in chunks so memory stays flat for any row count. */
export type ExportSource = (opts: { rows: number }) => Iterable<ExportRow> | AsyncIterable<ExportRow>;

export const EXPORT_COLUMNS = ['id', 'account', 'plan', 'amount_cents', 'created_at'] as const;
const PLANS = ['free', 'team', 'business', 'enterprise'];
const EPOCH = Date.UTC(2026, 0, 1);

export function* syntheticRows({ rows }: { rows: number }): Iterable<ExportRow> {
  for (let i = 1; i <= rows; i += 1) {
    yield {
      id: i,
      account: `acct-${(i * 2_654_435_761) % 1_000_003}`,
      plan: PLANS[i % PLANS.length] as string,
      amount_cents: (i * 7_919) % 100_000,
      created_at: new Date(EPOCH + i * 1000).toISOString(),
    };
  }
}

export const builtinSources: Record<string, ExportSource> = { synthetic: syntheticRows };

/**
 * The rows of a source in arrays of `size`. A synchronous source is read synchronously: `for await` over it would
 * wrap every row in a promise and a microtask (a million of each for a million rows).
 */
export async function* inChunks(rows: Iterable<ExportRow> | AsyncIterable<ExportRow>, size: number): AsyncGenerator<ExportRow[]> {
  let chunk: ExportRow[] = [];
  /** Adds a row; returns the chunk once it is full. */
  const take = (row: ExportRow): ExportRow[] | undefined => {
    chunk.push(row);
    if (chunk.length < size) return undefined;
    const full = chunk;
    chunk = [];
    return full;
  };
  if (Symbol.asyncIterator in rows) {
    for await (const row of rows) {
      const full = take(row);
      if (full) yield full;
    }
  } else {
    for (const row of rows) {
      const full = take(row);
      if (full) yield full;
    }
  }
  if (chunk.length > 0) yield chunk;
}
