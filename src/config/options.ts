// Owns the option table: every flag has exactly one environment variable, a default shown in --help,
// and a parser whose error says what is allowed. Only config/ reads process.env.
import { Command, Option } from 'commander';

export class ConfigError extends Error {
  readonly exitCode = 2;
}

export interface OptionSpec<T = unknown> {
  /** kebab-case name: flag `--<name>`, config key camelCase(name). */
  name: string;
  env: string;
  description: string;
  /** Raw default as the user would type it; undefined = unset. */
  default?: string;
  /** Placeholder shown in help, e.g. `<url>`; omitted for boolean switches. */
  arg?: string;
  parse: (raw: string) => T;
  /** The value may be a secret, a credential-bearing URL, a payload or personal data: errors never echo it. */
  sensitive?: boolean;
}

type Parsed<S> = S extends { parse: (raw: string) => infer T } ? T : never;
type CamelCase<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;
export type ConfigOf<Specs extends readonly OptionSpec[]> = {
  [S in Specs[number] as CamelCase<S['name']>]: S extends { default: string } ? Parsed<S> : Parsed<S> | undefined;
};

export function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Declares an option; keeps its literal name and default so ConfigOf can type the parsed config. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function option<const S extends OptionSpec<any>>(spec: S): S {
  return spec;
}

/** Adds the specs to a commander command so that `--help` lists flag, env var and default. */
export function addOptions(cmd: Command, specs: readonly OptionSpec[]): Command {
  for (const s of specs) {
    const flags = s.arg ? `--${s.name} ${s.arg}` : `--${s.name}`;
    const opt = new Option(flags, s.description).env(s.env);
    if (s.default !== undefined) opt.default(s.default);
    cmd.addOption(opt);
  }
  return cmd;
}

/**
 * Parses the raw strings commander collected (flag, else env var, else default). All problems are reported
 * together, each naming the flag and its variable.
 */
export function resolveOptions<Specs extends readonly OptionSpec[]>(specs: Specs, raw: Record<string, unknown>): ConfigOf<Specs> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const s of specs) {
    const key = camel(s.name);
    // Defaults apply here too, not only through commander, so in-process callers get the same config as the CLI.
    // An empty value counts as unset where there is a default: `REDIS_URL= queuelens …` (a variable blanked in a
    // shell or an env file) means the default, not an invalid empty URL.
    const given = raw[key];
    const value = (given === '' ? undefined : given) ?? s.default ?? given;
    if (value === undefined) {
      out[key] = undefined;
      continue;
    }
    const text = value === true ? 'true' : String(value);
    try {
      out[key] = s.parse(text);
    } catch (err) {
      const shown = s.sensitive ? '(value hidden)' : JSON.stringify(text);
      problems.push(`invalid --${s.name} (${s.env}) ${shown}: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  return out as ConfigOf<Specs>;
}

// ---- parsers: each throws an Error whose message says what is allowed ----

export const parse = {
  string: (raw: string): string => {
    if (raw.trim() === '') throw new Error('expected a non-empty value');
    return raw;
  },
  number(opts: { min?: number; max?: number; integer?: boolean; what?: string } = {}) {
    const what = opts.what ?? (opts.integer ? 'a whole number' : 'a number');
    const range =
      opts.min !== undefined && opts.max !== undefined ? ` from ${opts.min} to ${opts.max}` : opts.min !== undefined ? ` of at least ${opts.min}` : '';
    return (raw: string): number => {
      const n = Number(raw.trim());
      const bad =
        raw.trim() === '' ||
        !Number.isFinite(n) ||
        (opts.integer && !Number.isInteger(n)) ||
        (opts.min !== undefined && n < opts.min) ||
        (opts.max !== undefined && n > opts.max);
      if (bad) throw new Error(`expected ${what}${range}`);
      return n;
    };
  },
  seconds(min = 0.05, max = 86_400) {
    return parse.number({ min, max, what: 'a number of seconds (e.g. 5 or 0.5)' });
  },
  port: (raw: string): number => parse.number({ min: 1, max: 65_535, integer: true, what: 'a TCP port' })(raw),
  list: (raw: string): string[] => {
    const items = raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    if (items.length === 0) throw new Error('expected a comma-separated list with at least one item');
    return items;
  },
  oneOf<T extends string>(allowed: readonly T[]) {
    return (raw: string): T => {
      if (!(allowed as readonly string[]).includes(raw)) throw new Error(`expected one of ${allowed.join(', ')}`);
      return raw as T;
    };
  },
  boolean: (raw: string): boolean => {
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
    throw new Error('expected true or false');
  },
  url(protocols: readonly string[]) {
    return (raw: string): string => {
      let u: URL;
      try {
        u = new URL(raw);
      } catch {
        throw new Error(`expected a URL like ${protocols[0]}//host:port`);
      }
      if (!protocols.includes(u.protocol)) throw new Error(`expected a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);
      return raw;
    };
  },
};
