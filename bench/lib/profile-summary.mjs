// Summarises V8 .cpuprofile files (from `node bench/workers.mjs --profile <dir>`): self time per package and
// the hottest functions, as µs per job when the job count is given.
// Run: node bench/lib/profile-summary.mjs <file.cpuprofile> [jobs] [top functions, default 25] [inclusive filter regex]
import { readFileSync } from 'node:fs';

const [file, jobsArg, topArg, inclusiveArg] = process.argv.slice(2);
const jobs = Number(jobsArg ?? 0);
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));

const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map();
const deltas = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i += 1) {
  const id = profile.samples[i];
  selfUs.set(id, (selfUs.get(id) ?? 0) + (deltas[i + 1] ?? 0));
}

/** node_modules/<pkg>, node:<internal>, our dist/ or bench/, or V8's pseudo-frames. */
function bucket(cf) {
  const url = cf.url ?? '';
  // The innermost package: sdk-node carries its own copies of the SDK packages.
  const m = [...url.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)/g)].pop();
  if (m) return m[1];
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/')[0];
  if (/\/dist\//.test(url)) return 'queuelens ' + url.replace(/^.*\/dist\//, '');
  if (/\/bench\//.test(url)) return 'bench';
  if (!url) return cf.functionName.startsWith('(') ? cf.functionName : `native ${cf.functionName || '(anonymous)'}`;
  return url;
}

let total = 0;
const byBucket = new Map();
const byFn = new Map();
for (const [id, us] of selfUs) {
  const cf = nodes.get(id).callFrame;
  total += us;
  const b = bucket(cf);
  byBucket.set(b, (byBucket.get(b) ?? 0) + us);
  const fk = `${cf.functionName || '(anonymous)'} ${b}:${cf.lineNumber + 1}`;
  byFn.set(fk, (byFn.get(fk) ?? 0) + us);
}
const idle = byBucket.get('(idle)') ?? 0;
const busy = total - idle;
const fmt = (us) => (jobs ? `${(us / jobs).toFixed(1).padStart(7)} µs/job` : `${(us / 1000).toFixed(0).padStart(7)} ms`);
const pct = (us) => `${((us / busy) * 100).toFixed(1).padStart(5)}%`;
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled, busy ${(busy / 1e6).toFixed(2)} s${jobs ? `, ${(busy / jobs).toFixed(1)} µs busy per job` : ''}`);
console.log('\nself time by package (busy only):');
for (const [b, us] of [...byBucket]
  .filter(([b]) => b !== '(idle)')
  .sort((a, b) => b[1] - a[1])
  .slice(0, 30))
  console.log(`  ${fmt(us)} ${pct(us)}  ${b}`);
console.log(`\ntop ${top} functions by self time:`);
for (const [f, us] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${fmt(us)} ${pct(us)}  ${f}`);

// Inclusive time (self + callees) of functions from the packages matching the filter: which entry points cost.
if (inclusiveArg) {
  const filter = new RegExp(inclusiveArg);
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const incl = new Map();
  for (const [id, us] of selfUs) {
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = nodes.get(cur).callFrame;
      const b = bucket(cf);
      if (!filter.test(b)) continue;
      const fk = `${cf.functionName || '(anonymous)'} ${b}:${cf.lineNumber + 1}`;
      if (seen.has(fk)) continue;
      seen.add(fk);
      incl.set(fk, (incl.get(fk) ?? 0) + us);
    }
  }
  console.log(`\ntop ${top} functions by inclusive time, packages matching /${inclusiveArg}/:`);
  for (const [f, us] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${fmt(us)} ${pct(us)}  ${f}`);
}
