// Issue 14: every runbook starts on-call with the first three commands they would type, for Kubernetes and for
// the compose stack, and those commands name things that exist: the Deployments of deploy/k8s, the services of
// docker-compose.yml, and the log format the processes really print.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { parse, parseAllDocuments, parseDocument } from 'yaml';
import { createLogger } from '../src/log/logger.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (p: string): string => readFileSync(join(root, p), 'utf8');
const alertNames = [
  ...new Set(
    (parse(read('alerts/queuelens.rules.yml')) as { groups: Array<{ rules: Array<{ alert?: string }> }> }).groups
      .flatMap((g) => g.rules)
      .flatMap((r) => (r.alert ? [r.alert] : [])),
  ),
];
const deployments = new Set(
  ['sidecar.yaml', 'workers.yaml'].flatMap((f) =>
    parseAllDocuments(read(`deploy/k8s/base/${f}`))
      .map((d) => d.toJS() as { kind: string; metadata: { name: string } })
      .filter((m) => m.kind === 'Deployment')
      .map((m) => m.metadata.name),
  ),
);
const composeServices = new Set(
  Object.keys((parseDocument(read('docker-compose.yml'), { merge: true }).toJS({ maxAliasCount: 100 }) as { services: object }).services),
);
const QUEUES = ['email', 'webhook', 'export'];

function firstCommands(name: string): { kubectl: string[]; compose: string[] } {
  const doc = read(`docs/runbooks/${name}.md`);
  const start = doc.indexOf('## First three commands');
  expect(start, `${name}.md has no "First three commands" section`).toBeGreaterThan(0);
  expect(start, `${name}.md: the commands come before "How to confirm"`).toBeLessThan(doc.indexOf('## How to confirm'));
  const block = /```sh\n([\s\S]*?)```/.exec(doc.slice(start))![1]!;
  const [k8s, compose] = block.split('# docker compose');
  const lines = (s: string | undefined): string[] => (s ?? '').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  return { kubectl: lines(k8s), compose: lines(compose) };
}

describe.each(alertNames)('%s runbook', (name) => {
  test('gives at least three commands for Kubernetes and three for compose', () => {
    const { kubectl, compose } = firstCommands(name);
    expect(kubectl.filter((l) => l.startsWith('kubectl ')).length, kubectl.join('\n')).toBeGreaterThanOrEqual(3);
    expect(compose.length, compose.join('\n')).toBeGreaterThanOrEqual(3);
    expect(
      compose.some((l) => l.startsWith('docker compose ') || l.includes('$(docker compose')),
      compose.join('\n'),
    ).toBe(true);
  });

  test('its commands name Deployments and compose services that exist', () => {
    const { kubectl, compose } = firstCommands(name);
    for (const line of kubectl) {
      for (const m of line.matchAll(/deploy\/([a-z0-9<>-]+)/g)) {
        for (const q of QUEUES) expect(deployments, line).toContain(m[1]!.replace('<queue>', q));
      }
    }
    for (const line of compose) {
      const m = /docker compose (?:ps|logs|exec|restart|up -d)(?: --since \S+)?(?: -q)?((?: [a-z0-9<>-]+)+)/.exec(line);
      if (!m) continue;
      const named = m[1]!
        .trim()
        .split(' ')
        .filter((w) => !w.startsWith('-'));
      // exec's first word is the service, the rest is its command line.
      for (const s of line.includes('compose exec') ? named.slice(0, 1) : named) {
        for (const q of QUEUES) expect(composeServices, line).toContain(s.replace('<queue>', q));
      }
    }
  });
});

test('the log filter the runbooks use matches what the processes print for an error', () => {
  let out = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      out += String(chunk);
      cb();
    },
  });
  createLogger({ destination: sink }).error('collection failed');
  expect(out).toContain('"level":"error"');
  for (const name of alertNames) {
    const doc = read(`docs/runbooks/${name}.md`);
    expect(doc, name).not.toContain('"level":50');
    if (doc.includes('grep \'"level"')) expect(doc).toContain('grep \'"level":"error"\'');
  }
});
