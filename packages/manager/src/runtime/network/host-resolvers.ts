// The host's own resolvers: the DNS forwarder's upstreams when DNS_UPSTREAM is not set. Read
// by the configuration, which must not pull in the forwarder itself.
import fs from 'node:fs'

/** Nameservers of the host (resolv.conf), IPv4 only (the forwarder speaks to them over UDP/IPv4). */
export function hostNameservers(resolvConf = '/etc/resolv.conf'): string[] {
  try {
    return [...fs.readFileSync(resolvConf, 'utf8').matchAll(/^nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1]!)
  } catch {
    return []
  }
}
