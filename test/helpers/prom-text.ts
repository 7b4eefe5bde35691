// Parses Prometheus text exposition into series -> value, for assertions. Keys look like
// `name{a="1",b="2"}` with labels sorted, so tests can spell them predictably.
export type Series = Map<string, number>;

export function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return parts.length ? `${name}{${parts.join(',')}}` : name;
}

export function parsePromText(text: string): Series {
  const out: Series = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let lm: RegExpExecArray | null;
      while ((lm = re.exec(m[3])) !== null) labels[lm[1]!] = unescapeLabel(lm[2]!);
    }
    out.set(seriesKey(m[1]!, labels), Number(m[4]));
  }
  return out;
}

/** Prometheus text escapes exactly three things in label values: backslash, double quote, newline. */
function unescapeLabel(v: string): string {
  return v.replace(/\\(\\|"|n)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

/** All series of one metric, as label-sets with values. */
export function seriesOf(series: Series, name: string): string[] {
  return [...series.keys()].filter((k) => k === name || k.startsWith(`${name}{`));
}
