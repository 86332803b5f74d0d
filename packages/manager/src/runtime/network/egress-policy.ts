// What a VM may send, decided from its create/PATCH request. This file is the whole rule
// book (docs/architecture.md repeats it for users); nft-ruleset.ts only translates it.
//
//   allowIps   allowDomains   outboundInternet   egress                                      DNS
//   []         []             false              nothing                                     none
//   []         []             true               public unicast addresses only               any name
//   [cidrs]    []             false              only those cidrs (public part, see below)   none
//   [cidrs]    []             true               only those cidrs (public part, see below)   any name
//   any        [names]        any                the cidrs + the public addresses the        only the names
//                                                names resolved to
//
// "Public" means outside the excluded set (EGRESS_EXCLUDED_CIDRS, default EXCLUDED_DEFAULT:
// private, CGNAT, link-local incl. cloud metadata, loopback, multicast and the IANA special
// ranges). An excluded address is reachable only through an allowIps entry that lies wholly
// inside one excluded range ("10.0.0.0/8", "169.254.169.254"): the operator's tenant named that
// network on purpose. A broad entry ("0.0.0.0/0", "0.0.0.0/1", "8.0.0.0/5") opens only its
// public part, and a DNS answer never opens an excluded address (rebinding).
//
// Always blocked: other VMs, the host (except through the gateway address, and only when an
// entry inside the VM network names it, e.g. "172.16.0.1/32"; never the manager's API port)
// and IPv6.
import type { AddressPlan } from './address-plan.ts'
import { contains, parseAddress, parseCidr, within, type Cidr } from './ipv4.ts'

/**
 * Not "the internet": RFC 6890 / IANA special-purpose IPv4 ranges. The TEST-NETs and 198.18/15
 * are in: nothing public lives there, and LANs and proxies (fake-IP DNS) do use them.
 */
export const EXCLUDED_DEFAULT: readonly string[] = [
  '0.0.0.0/8', // "this network"
  '10.0.0.0/8', // RFC 1918
  '100.64.0.0/10', // CGNAT (RFC 6598)
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, cloud metadata 169.254.169.254
  '172.16.0.0/12', // RFC 1918
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // TEST-NET-1
  '192.88.99.0/24', // 6to4 relay anycast (deprecated)
  '192.168.0.0/16', // RFC 1918
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // TEST-NET-2
  '203.0.113.0/24', // TEST-NET-3
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, broadcast 255.255.255.255 included
]

/** EGRESS_EXCLUDED_CIDRS: comma-separated CIDRs replacing the default set; empty or unset keeps it. */
export function parseExcluded(raw: string | undefined): { cidrs: Cidr[] } | PolicyProblem {
  const entries = raw?.trim() ? raw.split(',').map((e) => e.trim()).filter(Boolean) : [...EXCLUDED_DEFAULT]
  const cidrs: Cidr[] = []
  for (const entry of entries) {
    const c = parseCidr(entry)
    if (!c) return { entry, reason: 'is not an IPv4 CIDR (a.b.c.d/n)' }
    if (c.prefix === 0) return { entry, reason: 'would exclude every address; to block all egress, give VMs no egress policy instead' }
    cidrs.push(c)
  }
  return { cidrs }
}

export const DEFAULT_EXCLUDED_CIDRS: readonly Cidr[] = EXCLUDED_DEFAULT.map((s) => parseCidr(s)!)

/** Whether an address (a DNS answer) lies in the excluded set. */
export function isExcluded(address: string, excluded: readonly Cidr[]): boolean {
  const ip = parseAddress(address)
  return ip === undefined || excluded.some((r) => contains(r, ip))
}

export interface EgressPolicy {
  mode: 'none' | 'list' | 'all'
  /** allowIps entries outside the VM network and not wholly inside an excluded range: their public part. */
  allow: Cidr[]
  /** allowIps entries wholly inside one excluded range: named explicitly, so allowed. */
  excludedAllowed: Cidr[]
  /** Host services through the gateway address. */
  gateway: boolean
  /** Which names the gateway's resolver answers for this VM. */
  dns: 'none' | 'all' | 'listed'
  /** allowDomains, normalised: "example.com" (that name) or "*.example.com" (its subdomains). */
  domains: string[]
}

export type PolicyProblem = { entry: string; reason: string }

/** Parses allowIps; the first bad entry is returned with a reason a person understands. */
export function parseAllowIps(entries: string[], plan: AddressPlan): { cidrs: Cidr[] } | PolicyProblem {
  const cidrs: Cidr[] = []
  for (const entry of entries) {
    const c = parseCidr(entry)
    if (!c) return { entry, reason: 'is not an IPv4 address or CIDR (a.b.c.d or a.b.c.d/n)' }
    if (within(c, plan.vmNet) && !contains(c, parseCidr(plan.gateway)!.base)) {
      return { entry, reason: 'is inside the VM network; VMs can never reach each other (only the gateway can be allowed)' }
    }
    cidrs.push(c)
  }
  return { cidrs }
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/

/** Parses allowDomains: host names, optionally "*." + a name for its subdomains. */
export function parseAllowDomains(entries: string[]): { domains: string[] } | PolicyProblem {
  const domains: string[] = []
  for (const entry of entries) {
    const name = entry.trim().toLowerCase().replace(/\.$/, '')
    const bare = name.startsWith('*.') ? name.slice(2) : name
    const labels = bare.split('.')
    if (bare.length > 253 || labels.length < 2 || !labels.every((l) => LABEL.test(l))) {
      return { entry, reason: 'is not a domain name (like "api.example.com", or "*.example.com" for its subdomains)' }
    }
    domains.push(name)
  }
  return { domains: [...new Set(domains)] }
}

/** Whether a queried name is covered by the normalised allowDomains. */
export function domainAllowed(domains: string[], queried: string): boolean {
  const q = queried.toLowerCase().replace(/\.$/, '')
  return domains.some((d) => (d.startsWith('*.') ? q.endsWith(d.slice(1)) && q.length > d.length - 1 : q === d))
}

export function compilePolicy(cidrs: Cidr[], outboundInternet: boolean, plan: AddressPlan, domains: string[] = [], excluded: readonly Cidr[] = DEFAULT_EXCLUDED_CIDRS): EgressPolicy {
  const inVmNet = (c: Cidr) => within(c, plan.vmNet)
  // Wholly inside one range, and never the default route: "0.0.0.0/0" is not a name for metadata.
  const explicit = (c: Cidr) => c.prefix > 0 && excluded.some((r) => within(c, r))
  return {
    mode: cidrs.length > 0 || domains.length > 0 ? 'list' : outboundInternet ? 'all' : 'none',
    allow: cidrs.filter((c) => !inVmNet(c) && !explicit(c)),
    excludedAllowed: cidrs.filter((c) => !inVmNet(c) && explicit(c)),
    gateway: cidrs.some(inVmNet),
    dns: domains.length > 0 ? 'listed' : outboundInternet ? 'all' : 'none',
    domains,
  }
}
