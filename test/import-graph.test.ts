// The shape of src/ stays as docs/architecture.md draws it: no import cycle between files or between folders,
// every folder in exactly one layer, imports only into lower layers, none of the forbidden edges the doc lists,
// and the README's layout naming every folder. Imports are found by TypeScript's own scanner (ts.preProcessFile:
// static, type-only, re-exports and dynamic import()); dependency-cruiser needs Node 22 and madge pins
// TypeScript 5, and the checks themselves are a few lines over that graph.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

/** src-relative file -> the src-relative files it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = info.importedFiles
      .map((f) => f.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => relative(SRC, normalize(join(dirname(file), spec.replace(/\.js$/, '.ts')))));
    graph.set(relative(SRC, file), [...new Set(targets)]);
  }
  return graph;
}

const folderOf = (file: string): string => file.split('/')[0]!;

/** The cycles of a graph: its strongly connected components of more than one node, and nodes importing themselves. */
function cycles(graph: Map<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

/** The doc's rules: ```layers (lowest first, one layer a line) and ```forbidden (`from -> to`, `*` for any folder). */
function architectureRules(): { layers: string[][]; forbidden: Array<[string, string]> } {
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
  const block = (name: string) => {
    const m = new RegExp('```' + name + '\\n([\\s\\S]*?)```').exec(doc);
    if (!m) throw new Error(`docs/architecture.md has no \`\`\`${name} block`);
    return m[1]!
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter(Boolean);
  };
  return {
    layers: block('layers').map((l) => l.split(/\s+/)),
    forbidden: block('forbidden').map((l) => {
      const m = /^(\S+)\s*->\s*(\S+)$/.exec(l);
      if (!m) throw new Error(`bad forbidden line in docs/architecture.md: ${l}`);
      return [m[1]!, m[2]!];
    }),
  };
}

const graph = importGraph();
const folders = [...new Set([...graph.keys()].map(folderOf))].sort();
const folderEdges = new Map<string, Set<string>>();
/** Which file imports which, per folder edge, for the failure messages. */
const because = new Map<string, string>();
for (const [file, targets] of graph) {
  for (const t of targets) {
    const [a, b] = [folderOf(file), folderOf(t)];
    if (a === b) continue;
    if (!folderEdges.has(a)) folderEdges.set(a, new Set());
    folderEdges.get(a)!.add(b);
    because.set(`${a} -> ${b}`, `${file} imports ${t}`);
  }
}

describe('import graph of src/', () => {
  it('finds the imports (a check over an empty graph could not fail)', () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get('backends/redis-backend.ts')).toContain('collector/collector.ts');
    for (const [file, targets] of graph) for (const t of targets) expect(graph.has(t), `${file} imports ${t}, which is not a file of src/`).toBe(true);
  });

  it('has no cycle between files', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('has no cycle between folders', () => {
    const byFolder = new Map([...folderEdges].map(([a, bs]) => [a, [...bs]]));
    const found = cycles(byFolder).map((c) =>
      c.map((a) => [...(folderEdges.get(a) ?? [])].filter((b) => c.includes(b)).map((b) => because.get(`${a} -> ${b}`))).flat(),
    );
    expect(found).toEqual([]);
  });

  it('puts every folder in exactly one layer of docs/architecture.md, and imports only into lower layers', () => {
    const { layers } = architectureRules();
    const layerOf = new Map<string, number>();
    for (const [i, layer] of layers.entries()) {
      for (const f of layer) {
        expect(layerOf.has(f), `${f} is in two layers`).toBe(false);
        layerOf.set(f, i);
      }
    }
    expect([...layerOf.keys()].sort()).toEqual(folders);
    const upward: string[] = [];
    for (const [a, bs] of folderEdges) for (const b of bs) if (layerOf.get(b)! >= layerOf.get(a)!) upward.push(`${a} -> ${b} (${because.get(`${a} -> ${b}`)})`);
    expect(upward).toEqual([]);
  });

  it('has none of the forbidden edges of docs/architecture.md', () => {
    const { forbidden } = architectureRules();
    expect(forbidden.length).toBeGreaterThan(0);
    const found: string[] = [];
    for (const [from, to] of forbidden) {
      for (const [a, bs] of folderEdges) {
        if (from !== '*' && from !== a) continue;
        for (const b of bs) if (to === '*' ? true : to === b) found.push(`${a} -> ${b} (${because.get(`${a} -> ${b}`)})`);
      }
    }
    expect(found).toEqual([]);
  });

  it("the README's layout section names every folder of src/", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const layout = /\n## Layout\n([\s\S]*)/.exec(readme)?.[1]?.split(/\n## /)[0] ?? '';
    expect(folders.filter((f) => !layout.includes(`src/${f}/`))).toEqual([]);
  });
});
