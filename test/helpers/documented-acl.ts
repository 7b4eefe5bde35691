// The Redis ACL rules of docs/security.md, read from the document, so that the documented rules are the tested ones.
import { readFileSync } from 'node:fs';

/** The `ACL SETUSER <user> …` line of docs/security.md, as arguments (the user first), its password filled in. */
export function documentedAcl(user: string, password: string): string[] {
  const doc = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
  const line = doc.split('\n').find((l) => l.startsWith(`ACL SETUSER ${user} `));
  if (!line) throw new Error(`docs/security.md has no "ACL SETUSER ${user}" line`);
  return line
    .trim()
    .split(/\s+/)
    .slice(2)
    .map((a) => (a.startsWith('>') ? `>${password}` : a));
}
