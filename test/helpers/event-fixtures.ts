// Loads recorded events-stream fixtures (test/fixtures/events/*.txt: `<id> <JSON field list>` per line).
import { readFileSync } from 'node:fs';
import { toEntry, type StreamEntry } from '../../src/events/lifecycle.js';

export function loadEventFixture(name: string): StreamEntry[] {
  const text = readFileSync(new URL(`../fixtures/events/${name}.txt`, import.meta.url), 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => {
      const space = l.indexOf(' ');
      return toEntry(l.slice(0, space), JSON.parse(l.slice(space + 1)) as string[]);
    });
}
