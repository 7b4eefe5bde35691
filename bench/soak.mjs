// Soak (issue 6): mixed traffic from `queuelens loadgen` through two `queuelens worker all` processes, two
// sidecar replicas (A reaches Redis through a TCP proxy we can stall, B directly), and a fault every minute in
// rotation: worker SIGKILL (restarted at once, as a supervisor would), Redis restart (SIGTERM, AOF fsync always),
// leader sidecar SIGKILL (restarted in its slot), proxy stall longer than the lease. Samples each sidecar's RSS
// and event-loop lag from /metrics every few seconds, then compares the exported totals with ground truth:
// added = what loadgen sent, failed = what sits in each <queue>-dlq, completed = the rest.
// Writes `## Soak` in docs/benchmarks.md and docs/img/soak.svg.
//   node bench/soak.mjs [--minutes 10] [--rate 20]      (npm run bench:soak -- --minutes 2)
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { freePort } from './lib/free-port.mjs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { SMTPServer } from 'smtp-server';

const { values: flags } = parseArgs({ options: { minutes: { type: 'string', default: '10' }, rate: { type: 'string', default: '20' } } });
const MINUTES = Number(flags.minutes);
const RATE = Number(flags.rate);
const DURATION_MS = MINUTES * 60_000;
const SAMPLE_MS = 3000;
const LEASE_S = 5;
const CLI = new URL('../dist/cli/index.js', import.meta.url).pathname;
const PROXY = new URL('../test/fixtures/tcp-proxy.mjs', import.meta.url).pathname;
const QUEUES = ['email', 'webhook', 'export'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const at = () => (Date.now() - t0) / 1000;
const log = (msg) => process.stdout.write(`[${at().toFixed(0).padStart(4)} s] ${msg}\n`);

async function until(what, fn, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch {
      // not there yet: try again
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

function run(args, env = {}) {
  const proc = spawn(process.execPath, args, { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out = (out + d).slice(-20_000)));
  const exited = new Promise((r) => proc.once('exit', r));
  return { proc, exited, output: () => out };
}

// --- Redis (AOF, fsync on every write, so a restart keeps every job) ---
const dir = mkdtempSync(join(tmpdir(), 'queuelens-soak-'));
const redisPort = await freePort();
const redisUrl = `redis://127.0.0.1:${redisPort}`;
let redisProc;
async function startRedis() {
  redisProc = spawn(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir],
    { stdio: 'ignore' },
  );
  const probe = new Redis({ port: redisPort, lazyConnect: true, retryStrategy: () => 100, maxRetriesPerRequest: null });
  probe.on('error', () => undefined);
  await until('redis', async () => (await probe.ping()) === 'PONG');
  probe.disconnect();
}
await startRedis();
const raw = new Redis(redisUrl, { maxRetriesPerRequest: null });
raw.on('error', () => undefined);

// --- peers: an SMTP sink refusing reject-* mailboxes, a webhook receiver answering ?status= ---
const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  logger: false,
  onRcptTo(addr, _s, cb) {
    cb(addr.address.startsWith('reject') ? Object.assign(new Error('no such mailbox'), { responseCode: 550 }) : undefined);
  },
  onData(stream, _s, cb) {
    stream.resume();
    stream.on('end', () => cb());
  },
});
const smtpPort = await freePort();
await new Promise((r) => smtp.listen(smtpPort, '127.0.0.1', r));
const hooks = createHttpServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(Number(new URL(req.url, 'http://x').searchParams.get('status') ?? 200)).end());
});
const hookPort = await freePort();
await new Promise((r) => hooks.listen(hookPort, '127.0.0.1', r));

// --- the link sidecar A uses ---
const proxyPort = await freePort();
const proxy = spawn(process.execPath, [PROXY, String(proxyPort), String(redisPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((r) => proxy.stdout.on('data', (d) => String(d).includes('LISTENING') && r()));

// --- sidecars (slot A through the proxy, slot B direct) ---
const slots = { A: { url: `redis://127.0.0.1:${proxyPort}` }, B: { url: redisUrl } };
async function startSidecar(name) {
  const slot = slots[name];
  slot.port = await freePort();
  slot.run = run(
    [
      CLI,
      'sidecar',
      '--port',
      String(slot.port),
      '--host',
      '127.0.0.1',
      '--collect-interval',
      '2',
      '--discovery-interval',
      '5',
      '--own-prefix',
      'ql-soak',
      '--events-lease',
      String(LEASE_S),
    ],
    { REDIS_URL: slot.url },
  );
  await until(`sidecar ${name}`, () => scrape(name));
}
async function scrape(name) {
  const res = await fetch(`http://127.0.0.1:${slots[name].port}/metrics`, { signal: AbortSignal.timeout(2000) });
  const series = new Map();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    series.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return series;
}
await startSidecar('A');
await until('A leads', async () => (await scrape('A')).get('bullmq_exporter_leader') === 1);
await startSidecar('B');

// --- workers and traffic ---
const exportDir = join(dir, 'exports');
mkdirSync(exportDir);
const workerEnv = {
  REDIS_URL: redisUrl,
  WEBHOOK_SECRET: 'soak-secret',
  SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
  WEBHOOK_ALLOW: '127.0.0.1/32',
  EXPORT_DIR: exportDir,
};
const workerArgs = [CLI, 'worker', 'all', '--lock-duration', '5', '--stalled-interval', '5'];
const workers = [run(workerArgs, workerEnv), run(workerArgs, workerEnv)];
const loadgen = run(
  [
    CLI,
    'loadgen',
    '--rate',
    String(RATE),
    '--duration',
    String(DURATION_MS / 1000),
    '--webhook-target',
    `http://127.0.0.1:${hookPort}/hook`,
    '--export-rows',
    '200',
  ],
  { REDIS_URL: redisUrl },
);
log(`soak: ${MINUTES} min at ${RATE} jobs/s, redis :${redisPort}, sidecars A (proxy) :${slots.A.port} B :${slots.B.port}`);

// --- sampling ---
const samples = [];
const sampler = setInterval(async () => {
  for (const name of ['A', 'B']) {
    try {
      const m = await scrape(name);
      samples.push({
        t: at(),
        slot: name,
        rssMb: m.get('process_resident_memory_bytes') / 2 ** 20,
        lagMs: m.get('nodejs_eventloop_lag_seconds') * 1000,
        p99Ms: m.get('nodejs_eventloop_lag_p99_seconds') * 1000,
        leader: m.get('bullmq_exporter_leader'),
      });
    } catch {
      // A killed or stalled sidecar is a gap in its line, not a sample.
    }
  }
}, SAMPLE_MS);

// --- faults ---
const faults = [];
async function leaderSlot() {
  for (const name of ['A', 'B']) if ((await scrape(name).catch(() => undefined))?.get('bullmq_exporter_leader') === 1) return name;
  return undefined;
}
const kinds = [
  async function workerKill() {
    const w = workers.shift();
    w.proc.kill('SIGKILL');
    await w.exited;
    workers.push(run(workerArgs, workerEnv));
    return 'worker SIGKILLed, replacement started';
  },
  async function redisRestart() {
    redisProc.kill('SIGTERM');
    await new Promise((r) => redisProc.once('exit', r));
    await sleep(2000);
    await startRedis();
    return 'redis-server stopped (SIGTERM) for 2 s and restarted from its AOF';
  },
  async function leaderKill() {
    const name = await leaderSlot();
    if (!name) return 'no leader to kill';
    slots[name].run.proc.kill('SIGKILL');
    await slots[name].run.exited;
    const started = Date.now();
    const other = name === 'A' ? 'B' : 'A';
    await until('takeover', async () => (await scrape(other)).get('bullmq_exporter_leader') === 1, 60_000);
    const takeover = (Date.now() - started) / 1000;
    await startSidecar(name);
    return `leader ${name} SIGKILLed; ${other} led after ${takeover.toFixed(1)} s; ${name} restarted`;
  },
  async function proxyStall() {
    // The stall must cut the leader off: when B leads, a graceful restart of B (it releases the lease) hands it to A.
    let handover = '';
    if ((await leaderSlot()) === 'B') {
      slots.B.run.proc.kill('SIGTERM');
      await slots.B.run.exited;
      await until('A leads', async () => (await scrape('A')).get('bullmq_exporter_leader') === 1, 30_000);
      await startSidecar('B');
      handover = 'B restarted (SIGTERM) to hand the lease to A; ';
    }
    proxy.kill('SIGSTOP');
    const stalledAt = Date.now();
    await until('B leads', async () => (await scrape('B')).get('bullmq_exporter_leader') === 1, 60_000);
    const takeover = (Date.now() - stalledAt) / 1000;
    await sleep(Math.max(0, stalledAt + LEASE_S * 2000 + 2000 - Date.now()));
    proxy.kill('SIGCONT');
    return `${handover}A's link stalled ${LEASE_S * 2 + 2} s while A led; B led after ${takeover.toFixed(1)} s`;
  },
];
for (let minute = 1; minute * 60_000 < DURATION_MS; minute++) {
  await sleep(t0 + minute * 60_000 - Date.now());
  const kind = kinds[(minute - 1) % kinds.length];
  const t = at();
  const what = await kind();
  faults.push({ t, kind: kind.name, what });
  log(`fault ${kind.name}: ${what}`);
}
const summary = JSON.parse(
  (await loadgen.exited,
  loadgen
    .output()
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .at(-1)),
);
log(`loadgen done: ${JSON.stringify(summary.counts)}`);

// --- settle: every job finished (failing emails are refused at once, failing webhooks retry once after ~5 s) ---
const pending = async () => {
  let n = 0;
  for (const q of QUEUES) {
    n +=
      (await raw.llen(`bull:${q}:wait`)) +
      (await raw.llen(`bull:${q}:active`)) +
      (await raw.zcard(`bull:${q}:delayed`)) +
      (await raw.zcard(`bull:${q}:prioritized`));
  }
  return n;
};
await until('all jobs finished', async () => (await pending()) === 0, 300_000);
await sleep(5000);
clearInterval(sampler);

// --- totals vs ground truth ---
const leader = await leaderSlot();
const m = await scrape(leader);
const rows = [];
let allExact = true;
for (const q of QUEUES) {
  const l = `{prefix="bull",queue="${q}"}`;
  const sent = summary.counts[q]?.sent ?? 0;
  const dead = await raw.llen(`bull:${q}-dlq:wait`);
  const got = {
    added: m.get(`bullmq_jobs_added_total${l}`) ?? 0,
    completed: m.get(`bullmq_jobs_completed_total${l}`) ?? 0,
    failed: m.get(`bullmq_jobs_failed_total${l}`) ?? 0,
    lost: m.get(`bullmq_exporter_events_lost_total${l}`) ?? 0,
    read: m.get(`bullmq_exporter_events_read_total${l}`) ?? 0,
    unmatched: m.get(`bullmq_exporter_events_unmatched_total${l}`) ?? 0,
  };
  const info = await raw.xinfo('STREAM', `bull:${q}:events`);
  const entriesAdded = info[info.indexOf('entries-added') + 1];
  const exact = got.added === sent && got.completed === sent - dead && got.failed === dead && got.lost === 0;
  allExact &&= exact;
  rows.push([
    q,
    sent,
    got.added,
    sent - dead,
    got.completed,
    dead,
    got.failed,
    got.lost,
    got.unmatched,
    `${got.read + got.lost} / ${entriesAdded}`,
    exact ? 'yes' : 'no',
  ]);
}

const bySlot = (k) =>
  Object.fromEntries(
    ['A', 'B'].map((s) => [
      s,
      samples
        .filter((x) => x.slot === s)
        .map((x) => x[k])
        .filter(Number.isFinite),
    ]),
  );
const stat = (xs) => (xs.length ? { min: Math.min(...xs), max: Math.max(...xs), last: xs.at(-1) } : { min: NaN, max: NaN, last: NaN });
const firstMinute = (s, k) => samples.filter((x) => x.slot === s && x.t >= 30 && x.t < 90).map((x) => x[k]);
const rss = bySlot('rssMb');
const p99 = bySlot('p99Ms');

writeFileSync(new URL('../docs/img/soak.svg', import.meta.url), plot(samples, faults));
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const body = `
\`node bench/soak.mjs --minutes ${MINUTES} --rate ${RATE}\` (\`npm run bench:soak\`): ${MINUTES} minutes of \`queuelens loadgen\` at ${RATE} jobs/s
(email=6, webhook=3, export=1, 5% built to fail) through two \`queuelens worker all\` processes, against a private
redis-server with AOF (fsync always), with two sidecar replicas: A reaches Redis through a TCP proxy the run can
freeze, B directly; lease ${LEASE_S} s, collection every 2 s. A fault every minute, in rotation: worker SIGKILL
(replacement started at once), Redis restart (SIGTERM, down 2 s), leader sidecar SIGKILL (restarted in its slot),
A's link frozen (SIGSTOP of the proxy) for ${LEASE_S * 2 + 2} s while A leads (if B led, B is first restarted gracefully so
that the lease passes to A). Load average at the end: ${load} (2 cores, shared).

![sidecar RSS and event-loop lag over the soak](img/soak.svg)

Faults injected:

${faults.map((f) => `- ${f.t.toFixed(0)} s, ${f.kind}: ${f.what}`).join('\n')}

Totals from the leader's /metrics once every job had finished, against ground truth (added = what loadgen sent;
failed = jobs in \`<queue>-dlq\`; completed = the rest):

| queue | sent | added_total | completed (truth) | completed_total | dead-lettered | failed_total | lost | unmatched | read+lost / entries added | exact |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}

Sidecar process, sampled every ${SAMPLE_MS / 1000} s (a restarted sidecar starts a new line in the plot):

| slot | RSS min / max / last (MB) | RSS in the first minute, max (MB) | event-loop lag p99 max (ms) | lag p99 last (ms) |
| --- | --- | --- | --- | --- |
${['A', 'B'].map((s) => `| ${s} | ${f1(stat(rss[s]).min)} / ${f1(stat(rss[s]).max)} / ${f1(stat(rss[s]).last)} | ${f1(Math.max(...firstMinute(s, 'rssMb')))} | ${f1(stat(p99[s]).max)} | ${f1(stat(p99[s]).last)} |`).join('\n')}

All totals exact: **${allExact ? 'yes' : 'no'}**.
`;
writeSection(new URL('../docs/benchmarks.md', import.meta.url), '## Soak', body);
log(`done; all totals exact: ${allExact}`);
process.stdout.write(body);

// The processes' own logs (warnings and errors), for a run that did not add up.
writeFileSync(
  join(tmpdir(), 'queuelens-soak-logs.txt'),
  [...Object.entries(slots).map(([k, s]) => `== sidecar ${k}\n${s.run.output()}`), ...workers.map((w, i) => `== worker ${i}\n${w.output()}`)].join('\n'),
);

// --- teardown ---
loadgen.proc.kill('SIGKILL');
for (const w of workers) w.proc.kill('SIGTERM');
for (const s of Object.values(slots)) s.run.proc.kill('SIGTERM');
await Promise.all([...workers.map((w) => w.exited), ...Object.values(slots).map((s) => s.run.exited)]);
proxy.kill('SIGCONT');
proxy.kill('SIGKILL');
raw.disconnect();
redisProc.kill('SIGTERM');
await new Promise((r) => redisProc.once('exit', r));
smtp.close();
hooks.close();
rmSync(dir, { recursive: true, force: true });

function writeSection(file, heading, text) {
  const doc = readFileSync(file, 'utf8');
  const section = `${heading}\n\n${text.trim()}\n`;
  const start = doc.indexOf(`${heading}\n`);
  const end = start === -1 ? -1 : doc.indexOf('\n## ', start + heading.length);
  writeFileSync(file, start === -1 ? `${doc.trimEnd()}\n\n${section}` : doc.slice(0, start) + section + (end === -1 ? '' : doc.slice(end)));
}

/** Two panels (RSS, event-loop lag p99) over time, one line per sidecar slot life, faults as dashed lines. */
function plot(points, marks) {
  const W = 900;
  const H = 220;
  const L = 60;
  const R = 20;
  const T = 30;
  const gap = 50;
  const tMax = Math.max(...points.map((p) => p.t), 1);
  const x = (t) => L + ((W - L - R) * t) / tMax;
  const colors = { A: '#1f77b4', B: '#d62728' };
  const panel = (key, label, top) => {
    const vals = points.map((p) => p[key]).filter(Number.isFinite);
    const vMax = Math.max(...vals, 1) * 1.1;
    const y = (v) => top + H - (H * v) / vMax;
    let out = `<text x="${L}" y="${top - 8}" font-size="13">${label}</text>`;
    out += `<line x1="${L}" y1="${top + H}" x2="${W - R}" y2="${top + H}" stroke="#999"/><line x1="${L}" y1="${top}" x2="${L}" y2="${top + H}" stroke="#999"/>`;
    for (let i = 0; i <= 4; i++) {
      const v = (vMax * i) / 4;
      out += `<text x="${L - 6}" y="${y(v) + 4}" font-size="10" text-anchor="end">${v.toFixed(v < 10 ? 1 : 0)}</text><line x1="${L}" y1="${y(v)}" x2="${W - R}" y2="${y(v)}" stroke="#eee"/>`;
    }
    for (const slot of ['A', 'B']) {
      // A gap longer than three samples (a killed or frozen sidecar) breaks the line.
      let d = '';
      let last = -Infinity;
      for (const p of points.filter((q) => q.slot === slot && Number.isFinite(q[key]))) {
        d += `${p.t - last > (SAMPLE_MS / 1000) * 3 ? 'M' : 'L'}${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)} `;
        last = p.t;
      }
      out += `<path d="${d}" fill="none" stroke="${colors[slot]}" stroke-width="1.5"/>`;
    }
    for (const f of marks) out += `<line x1="${x(f.t)}" y1="${top}" x2="${x(f.t)}" y2="${top + H}" stroke="#888" stroke-dasharray="4 3"/>`;
    return out;
  };
  const labels = marks.map((f) => `<text x="${x(f.t) + 3}" y="${T + 10}" font-size="9" fill="#555">${f.kind}</text>`).join('');
  const ticks = Array.from(
    { length: Math.floor(tMax / 60) + 1 },
    (_, i) => `<text x="${x(i * 60)}" y="${T + 2 * H + gap + 16}" font-size="10" text-anchor="middle">${i} min</text>`,
  ).join('');
  const legend = `<text x="${W - 260}" y="14" font-size="11"><tspan fill="${colors.A}">━ sidecar A (via proxy)</tspan>  <tspan fill="${colors.B}">━ sidecar B (direct)</tspan></text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${T + 2 * H + gap + 30}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>${legend}
${panel('rssMb', 'resident memory (MB)', T)}
${panel('p99Ms', 'event-loop lag p99 (ms)', T + H + gap)}
${labels}${ticks}
</svg>
`;
}
