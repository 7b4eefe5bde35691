// `npm ci` on the oldest Node that package.json's `engines` admits installs without an EBADENGINE warning: every
// package in the lockfile (runtime and the test tooling alike) supports it. A dependency that needs a newer Node is
// either pinned to a version that does not, or `engines` (and the README) are raised.
import { readFileSync } from 'node:fs';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8')) as {
  packages: Record<string, { version?: string; engines?: unknown }>;
};

describe('engines', () => {
  it('every locked package runs on the oldest Node that engines.node admits', () => {
    const oldest = semver.minVersion(pkg.engines.node)!.version;
    const refuse = Object.entries(lock.packages)
      .filter(([, p]) => p.engines && typeof p.engines === 'object' && typeof (p.engines as { node?: unknown }).node === 'string')
      .filter(([, p]) => !semver.satisfies(oldest, (p.engines as { node: string }).node))
      .map(([path, p]) => `${path.replace(/^.*node_modules\//, '')}@${p.version} needs node ${(p.engines as { node: string }).node}`);
    expect(refuse).toEqual([]);
  });

  it('the README names the same minimum', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    expect(readme).toContain(`Node.js ${semver.minVersion(pkg.engines.node)!.version.replace(/\.0$/, '')} or newer`);
  });
});
