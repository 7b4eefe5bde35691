// Loads queuelens's Lua scripts (src/redis/lua/<name>-<numKeys>.lua) onto a connection, and binds a typed
// wrapper to each (lua-scripts.ts declares them: arguments and reply by name).
// The scripts are embedded in the build (lua-embedded.ts, generated from src/redis/lua/ by `npm run gen:lua`), so
// the same code runs from src/, dist/, the image and the npm package without reading a file at run time.
// A script whose first line is `#!lua flags=no-writes` is sent with EVALSHA_RO/EVAL_RO: Redis then checks its
// keys for read access only, so a read-only ACL user can run it (EVAL counts every key it is given as written).
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { LUA_SOURCES } from './lua-embedded.js';

// connection.ts defines the scripts on every connection it makes, so this file names the client type itself.
type RedisClient = Redis | Cluster;

const NO_WRITES = /^#!lua flags=no-writes\r?\n/;

interface Script {
  lua: string;
  numberOfKeys: number | null;
  readOnly: boolean;
}

const cache = new Map<string, Script>();

export function readScript(file: string): Script {
  const hit = cache.get(file);
  if (hit) return hit;
  // `-n` marks a script that takes a variable number of keys (the caller passes the count first).
  const m = /^(.+)-(\d+|n)\.lua$/.exec(file);
  if (!m) throw new Error(`script file ${file} must be named <name>-<numKeys>.lua or <name>-n.lua`);
  const numberOfKeys = m[2] === 'n' ? null : Number(m[2]);
  const lua = LUA_SOURCES[file];
  if (lua === undefined) throw new Error(`no script ${file} in src/redis/lua/ (or lua-embedded.ts is out of date: npm run gen:lua)`);
  const script = { lua, numberOfKeys, readOnly: NO_WRITES.test(lua) };
  cache.set(file, script);
  return script;
}

type Args = Array<string | number | Buffer>;

/**
 * Defines `command` on the client from `file` once. Writing scripts go through ioredis's defineCommand (EVALSHA,
 * falling back to EVAL on NOSCRIPT); read-only ones the same way with EVALSHA_RO and EVAL_RO, which ioredis's
 * `readOnly` does not send (it only routes to replicas).
 */
function defineScript(client: RedisClient, command: string, file: string): void {
  const target = client as unknown as Record<string, unknown>;
  if (typeof target[command] === 'function') return;
  const { lua, numberOfKeys, readOnly } = readScript(file);
  if (!readOnly) {
    client.defineCommand(command, numberOfKeys === null ? { lua } : { lua, numberOfKeys });
    return;
  }
  const sha = createHash('sha1').update(lua).digest('hex');
  target[command] = async (...args: Args): Promise<unknown> => {
    const withKeys = numberOfKeys === null ? args : [numberOfKeys, ...args];
    try {
      return await client.call('EVALSHA_RO', sha, ...withKeys);
    } catch (err) {
      if (!/NOSCRIPT/.test((err as Error).message)) throw err;
      // EVAL_RO caches the script, so the next EVALSHA_RO finds it.
      return client.call('EVAL_RO', lua, ...withKeys);
    }
  };
}

/**
 * Defines every writing script on a new connection, before its first command. ioredis copies a connection's
 * scripts into an auto-pipeline when it creates one: a script defined later, while a pipeline is pending, and
 * called in the same tick, would find no function there (`pipeline[functionName] is not a function`).
 */
export function defineWritingScripts(client: RedisClient): void {
  for (const file of Object.keys(LUA_SOURCES)) {
    if (!readScript(file).readOnly) defineScript(client, commandName(file), file);
  }
}

function commandName(file: string): string {
  return `ql_${file.replace(/\.lua$/, '').replace(/-/g, '_')}`;
}

/**
 * What a script takes and returns, by name: the one place that knows its KEYS/ARGV order and its reply layout
 * (each documented in the script's header).
 */
export interface ScriptSpec<A, R> {
  /** `<name>-<numKeys>.lua`, or `<name>-n.lua` for a variable number of keys. */
  file: string;
  keys(a: A): string[];
  args(a: A): Array<string | number>;
  /** The reply, by name; `a` is what was asked (a reply of several queues comes in their order). */
  decode(reply: unknown, a: A): R;
}

/** A script bound to a connection: named arguments in, decoded reply out. */
export type ScriptCall<A, R> = (a: A) => Promise<R>;
/** The call bindScript() returns for a spec. */
export type CallOf<S> = S extends ScriptSpec<infer A, infer R> ? ScriptCall<A, R> : never;

/** Loads `spec`'s script onto `client` (once per connection) and returns its typed call. */
export function bindScript<A, R>(client: RedisClient, spec: ScriptSpec<A, R>): ScriptCall<A, R> {
  const command = commandName(spec.file);
  defineScript(client, command, spec.file);
  const { numberOfKeys } = readScript(spec.file);
  const send = (client as unknown as Record<string, (...args: Args) => Promise<unknown>>)[command]!.bind(client);
  return async (a) => {
    const keys = spec.keys(a);
    if (numberOfKeys !== null && keys.length !== numberOfKeys) throw new Error(`${spec.file} takes ${numberOfKeys} keys, got ${keys.length}`);
    const reply = await (numberOfKeys === null ? send(keys.length, ...keys, ...spec.args(a)) : send(...keys, ...spec.args(a)));
    return spec.decode(reply, a);
  };
}
