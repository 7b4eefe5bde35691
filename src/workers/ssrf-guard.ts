// Owns the webhook SSRF guard: a target must resolve to public unicast addresses unless its host or
// address range is explicitly allow-listed. Checked on the resolved address at connect time, so a DNS
// name cannot point at 127.0.0.1 or the cloud metadata service behind our back.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { parseAllowEntry, type Range } from '../config/webhook-allow.js';

export class BlockedTargetError extends Error {
  readonly code = 'E_WEBHOOK_TARGET_BLOCKED';
}

export class SsrfGuard {
  private readonly hosts = new Set<string>();
  private readonly ranges: Range[] = [];

  /** `allow`: host names (exact) and CIDR ranges or single addresses that may be private. */
  constructor(allow: readonly string[] = []) {
    for (const entry of allow) {
      const parsed = parseAllowEntry(entry);
      if ('range' in parsed) this.ranges.push(parsed.range);
      else this.hosts.add(parsed.host);
    }
  }

  isHostAllowListed(host: string): boolean {
    return this.hosts.has(host.toLowerCase().replace(/^\[|\]$/g, ''));
  }

  /** Throws BlockedTargetError unless the address is public unicast or allow-listed. */
  checkAddress(address: string): void {
    let ip = ipaddr.parse(address);
    // An IPv4 address inside IPv6 is judged as that IPv4 address: mapped (::ffff:a.b.c.d) and the deprecated
    // IPv4-compatible form (::a.b.c.d, so ::7f00:1 is 127.0.0.1), which ipaddr.js calls plain unicast.
    if (ip.kind() === 'ipv6') {
      const v6 = ip as ipaddr.IPv6;
      if (v6.isIPv4MappedAddress()) ip = v6.toIPv4Address();
      else if (v6.parts.slice(0, 6).every((p) => p === 0) && v6.range() === 'unicast') ip = ipaddr.fromByteArray(v6.toByteArray().slice(12));
    }
    if (ip.range() === 'unicast') return;
    for (const [net, bits] of this.ranges) if (net.kind() === ip.kind() && ip.match(net, bits)) return;
    throw new BlockedTargetError(`webhook target address is ${ip.range()} (${ip.toString()}); add it to --webhook-allow to permit it`);
  }

  /** A dns lookup for http.request that refuses blocked addresses. */
  lookup(hostname: string): LookupFunction {
    const trusted = this.isHostAllowListed(hostname);
    return (host, options, callback) => {
      dnsLookup(host, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
        if (err) return callback(err, '', 4);
        try {
          if (!trusted) for (const a of addresses) this.checkAddress(a.address);
        } catch (blocked) {
          return callback(blocked as NodeJS.ErrnoException, '', 4);
        }
        if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
        const first = addresses[0] as LookupAddress;
        callback(null, first.address, first.family);
      });
    };
  }
}
