// Loads queuelens's Lua scripts (src/redis/lua/<name>-<numKeys>.lua) onto a connection as custom commands.
// The files are read from src/ both when running from src (tests) and from dist (they sit at the same depth).
import { readFileSync } from 'node:fs';
import type { RedisClient } from './connection.js';

const LUA_DIR = new URL('../../src/redis/lua/', import.meta.url);
const cache = new Map<string, { lua: string; numberOfKeys: number | null }>();

export function readScript(file: string): { lua: string; numberOfKeys: number | null } {
  const hit = cache.get(file);
  if (hit) return hit;
  // `-n` marks a script that takes a variable number of keys (the caller passes the count first).
  const m = /^(.+)-(\d+|n)\.lua$/.exec(file);
  if (!m) throw new Error(`script file ${file} must be named <name>-<numKeys>.lua or <name>-n.lua`);
  const numberOfKeys = m[2] === 'n' ? null : Number(m[2]);
  const script = { lua: readFileSync(new URL(file, LUA_DIR), 'utf8'), numberOfKeys };
  cache.set(file, script);
  return script;
}

/** Defines `command` on the client from `file` once (ioredis sends EVALSHA, falling back to EVAL on NOSCRIPT). */
export function defineScript(client: RedisClient, command: string, file: string): void {
  if (typeof (client as unknown as Record<string, unknown>)[command] === 'function') return;
  const { lua, numberOfKeys } = readScript(file);
  client.defineCommand(command, numberOfKeys === null ? { lua } : { lua, numberOfKeys });
}
