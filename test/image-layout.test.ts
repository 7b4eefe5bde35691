// Issue 15 item 15 / issue 19: the container image must carry what the sidecar reads at run time. No Docker engine
// runs here, so this test builds the runtime stage's file layout the way the Dockerfile does: it reads the
// Dockerfile, applies the runtime stage's COPY instructions (the build stages' outputs are this checkout's dist/
// and its production dependencies alone), makes every file read-only to the process, and starts the image's ENTRYPOINT and CMD
// as the image's user with the image's environment. GET / must answer the status page and /runbooks/... the
// runbook, which the old image answered with 500 and 404.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { freePort, startTestRedis, type TestRedis } from './helpers/redis-server.js';

const root = fileURLToPath(new URL('..', import.meta.url));

interface Stage {
  name: string;
  workdir: string;
  lines: string[];
}

/** The Dockerfile's stages, with line continuations joined and comments dropped. */
function stages(): Stage[] {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8').replace(/\\\n\s*/g, '');
  const out: Stage[] = [];
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (line === '' || line.startsWith('#')) continue;
    const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) out.push({ name: from[1] ?? String(out.length), workdir: '/', lines: [] });
    else if (out.length > 0) {
      const stage = out[out.length - 1]!;
      const wd = /^WORKDIR\s+(\S+)/i.exec(line);
      if (wd) stage.workdir = wd[1]!;
      stage.lines.push(line);
    }
  }
  return out;
}

const all = stages();
const runtime = all[all.length - 1]!;
const instr = (name: string): string[] => runtime.lines.filter((l) => l.toUpperCase().startsWith(`${name} `));
const jsonArg = (name: string): string[] =>
  JSON.parse(
    instr(name)
      .at(-1)!
      .slice(name.length + 1),
  ) as string[];

/** Where a build stage's output lives in this checkout: its WORKDIR maps to the repository root. */
function stageSource(stage: string, path: string): string {
  const s = all.find((x) => x.name === stage);
  expect(s, `COPY --from=${stage}: no such stage`).toBeDefined();
  expect(path.startsWith(`${s!.workdir}/`), path).toBe(true);
  return join(root, path.slice(s!.workdir.length + 1));
}

/**
 * The production dependencies, as the prod-deps stage installs them: the packages `npm ls --omit=dev` lists,
 * hard-linked from this checkout (copied where hard links cannot cross file systems).
 */
function installProductionDependencies(target: string): void {
  const r = spawnSync('npm', ['ls', '--omit=dev', '--parseable', '--all'], { cwd: root, encoding: 'utf8' });
  const packages = r.stdout
    .split('\n')
    .filter((p) => p.startsWith(join(root, 'node_modules') + '/'))
    .sort();
  let last = '';
  for (const pkg of packages) {
    if (last !== '' && pkg.startsWith(`${last}/`)) continue; // inside a package already copied
    last = pkg;
    const dest = join(target, relative(join(root, 'node_modules'), pkg));
    mkdirSync(dirname(dest), { recursive: true });
    if (spawnSync('cp', ['-al', pkg, dest]).status !== 0) cpSync(pkg, dest, { recursive: true });
  }
  expect(packages.length).toBeGreaterThan(10);
}

/**
 * Takes write permission off the layout. Files under node_modules are hard links shared with this checkout:
 * they stay as npm left them (root's, not writable by the image's user), only their directories change.
 */
function readOnly(path: string, shared = false): void {
  const st = lstatSync(path);
  if (st.isDirectory()) {
    for (const e of readdirSync(path)) readOnly(join(path, e), shared || e === 'node_modules');
    chmodSync(path, 0o555);
  } else if (!shared) chmodSync(path, 0o444);
}

let layout: string;
let redis: TestRedis;
let proc: ChildProcess;
let out = '';
let base: string;

beforeAll(async () => {
  layout = mkdtempSync(join(tmpdir(), 'queuelens-image-'));
  chmodSync(layout, 0o755);
  const app = join(layout, runtime.workdir);
  mkdirSync(app, { recursive: true });
  for (const line of instr('COPY')) {
    const words = line.split(/\s+/).slice(1);
    const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
    const [src, dest] = words.filter((w) => !w.startsWith('--'));
    const target = join(app, dest!);
    mkdirSync(dirname(target), { recursive: true });
    if (from && src!.endsWith('/node_modules')) {
      installProductionDependencies(target.replace(/\/$/, ''));
    } else {
      cpSync(from ? stageSource(from, src!) : join(root, src!), target.endsWith('/') ? join(target, src!.split('/').pop()!) : target, { recursive: true });
    }
  }
  readOnly(layout);
  redis = await startTestRedis();
  // One queue with one waiting job before the sidecar starts: its collection runs the embedded Lua scripts.
  const seed = redis.client();
  await seed.hset('bull:image-layout:meta', 'opts.maxLenEvents', '10000');
  await seed.rpush('bull:image-layout:wait', '1');
  seed.disconnect();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {};
  for (const line of instr('ENV')) for (const m of line.slice(4).matchAll(/(\w+)=(\S+)/g)) env[m[1]!] = m[2]!;
  // The official node image's user `node` is uid/gid 1000.
  const [user, group] = instr('USER')
    .at(-1)!
    .slice(5)
    .split(':')
    .map((u) => (u === 'node' ? 1000 : Number(u)));
  const [bin, ...args] = [...jsonArg('ENTRYPOINT'), ...jsonArg('CMD')];
  expect(bin).toBe('node');
  proc = spawn(process.execPath, args, {
    cwd: app,
    uid: user,
    gid: group ?? user,
    env: {
      PATH: process.env.PATH,
      HOME: '/nonexistent',
      ...env,
      REDIS_URL: redis.url,
      QUEUELENS_PORT: String(port),
      QUEUELENS_HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  for (let i = 0; ; i++) {
    const ok = await fetch(`${base}/livez`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (i > 600 || proc.exitCode !== null) throw new Error(`the sidecar did not start from the image layout:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 120_000);

afterAll(async () => {
  if (proc && proc.exitCode === null) {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
  await redis?.stop();
  if (layout) {
    chmodSync(layout, 0o755);
    rmSync(layout, { recursive: true, force: true, maxRetries: 2 });
  }
});

describe("the image's file layout", () => {
  test('the runtime stage runs as a non-root user from a separate production-dependencies stage', () => {
    const [user] = instr('USER').at(-1)!.slice(5).split(':');
    expect(Number(user)).toBeGreaterThan(0);
    const deps = all.find((s) => runtime.lines.some((l) => l.includes(`--from=${s.name} `) && l.includes('node_modules')));
    expect(deps, 'node_modules comes from a stage of its own').toBeDefined();
    expect(
      deps!.lines.some((l) => /npm ci .*--omit=dev/.test(l)),
      'that stage installs production dependencies only',
    ).toBe(true);
  });

  test('GET / answers the status page', async () => {
    const res = await fetch(`${base}/`);
    expect(res.status, out).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await res.text()).toBe(readFileSync(join(root, 'src/http/status-page.html'), 'utf8'));
  });

  test('GET /runbooks/<Alert>.md answers the runbook', async () => {
    for (const name of ['BullMQNoWorkers', 'BullMQRedisDown']) {
      const res = await fetch(`${base}/runbooks/${name}.md`);
      expect(res.status, name).toBe(200);
      expect(await res.text()).toBe(readFileSync(join(root, 'docs/runbooks', `${name}.md`), 'utf8'));
    }
  });

  test('the sidecar collects from Redis (its Lua scripts are in the image) without writing to its files', async () => {
    for (let i = 0; ; i++) {
      const text = await (await fetch(`${base}/metrics`)).text();
      if (/^bullmq_exporter_up 1$/m.test(text) && text.includes('bullmq_queue_jobs{prefix="bull",queue="image-layout",state="waiting"} 1\n')) break;
      if (i > 600) throw new Error(`bullmq_exporter_up never reached 1 with the seeded queue read:\n${text.slice(0, 2000)}\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(proc.exitCode).toBeNull();
  });
});

describe('the publish workflow', () => {
  interface Step {
    uses?: string;
    run?: string;
    with?: Record<string, string | boolean>;
  }
  const wf = parse(readFileSync(join(root, '.github/workflows/image.yml'), 'utf8')) as {
    on: { push: { tags: string[] } };
    permissions: Record<string, string>;
    env: { IMAGE: string };
    jobs: Record<string, { steps: Step[] }>;
  };
  const steps = Object.values(wf.jobs).flatMap((j) => j.steps);
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

  test('publishes this Dockerfile as the image the manifests pin, tagged with the package version', () => {
    expect(wf.on.push.tags).toEqual(['v*.*.*']);
    expect(wf.permissions).toEqual({ contents: 'read', packages: 'write' });
    const build = steps.find((s) => s.uses?.startsWith('docker/build-push-action@'))!;
    expect(build.with?.file).toBe('Dockerfile');
    expect(build.with?.push).toBe(true);
    expect(String(build.with?.tags)).toContain('${{ env.IMAGE }}:${{ steps.version.outputs.version }}');
    const sidecar = readFileSync(join(root, 'deploy/k8s/base/sidecar.yaml'), 'utf8');
    expect(sidecar).toContain(`image: ${wf.env.IMAGE}:${version}`);
    // The version check refuses a tag that is not v<package.json version>.
    expect(steps.some((s) => s.run?.includes('"v${version}"') && s.run.includes('exit 1'))).toBe(true);
    expect(steps.some((s) => s.run?.includes('test/image-layout.test.ts'))).toBe(true);
  });

  test('every action is pinned to a release, never a branch', () => {
    for (const s of steps.filter((x) => x.uses)) expect(s.uses, s.uses).toMatch(/^[\w-]+\/[\w-]+@v\d+$/);
  });
});
