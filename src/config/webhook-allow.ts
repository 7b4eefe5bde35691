// Owns what a --webhook-allow (WEBHOOK_ALLOW) entry may be: the option parser checks each one at start-up,
// and the SSRF guard (workers/ssrf-guard.ts) matches webhook targets against the parsed entries.
import ipaddr from 'ipaddr.js';

export type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/;

/**
 * One --webhook-allow entry: a CIDR range, a single address, or an exact host name. Throws an Error saying
 * what is allowed; the option parser calls this too, so a typo is a config error at start-up, not a crash later.
 */
export function parseAllowEntry(entry: string): { range: Range } | { host: string } {
  const e = entry.trim().toLowerCase();
  const example = 'expected a host name, an address or a CIDR range such as 10.0.0.0/8';
  if (e.includes('/')) {
    if (!ipaddr.isValidCIDR(e)) throw new Error(`${JSON.stringify(entry)} is not a valid CIDR range: ${example}`);
    return { range: ipaddr.parseCIDR(e) };
  }
  if (ipaddr.isValid(e)) {
    const a = ipaddr.parse(e);
    return { range: [a, a.kind() === 'ipv4' ? 32 : 128] };
  }
  // A dotted number that is not an address (999.1.1.1) is a typo, not a host name.
  if (!HOST_NAME.test(e) || /^[\d.]+$/.test(e)) throw new Error(`${JSON.stringify(entry)} is not a valid address or host name: ${example}`);
  return { host: e };
}
