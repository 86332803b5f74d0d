// What a VM may send, decided from its create/PATCH request. This file is the whole rule
// book (docs/architecture.md repeats it for users); nft-ruleset.ts only translates it.
//
//   allowIps   allowDomains   outboundInternet   egress                                  DNS
//   []         []             false              nothing                                 none
//   []         []             true               anything except the always-blocked      any name
//   [cidrs]    []             false              only those cidrs                        none
//   [cidrs]    []             true               only those cidrs                        any name
//   any        [names]        any                the cidrs + what the names resolved to  only the names
//
// Always blocked: other VMs, the host (except through the gateway address, and only when an
// entry inside the VM network names it, e.g. "172.16.0.1/32"), and the reserved ranges below
// (loopback, link-local incl. cloud metadata, multicast, 0/8, 240/4) unless an entry lies
// inside one of them. IPv6 is dropped.
import type { AddressPlan } from './address-plan.ts'
import { contains, parseCidr, within, type Cidr } from './ipv4.ts'

export const RESERVED: readonly Cidr[] = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '240.0.0.0/4'].map((s) => parseCidr(s)!)

export interface EgressPolicy {
  mode: 'none' | 'list' | 'all'
  /** allowIps entries outside the reserved ranges and the VM network. */
  allow: Cidr[]
  /** allowIps entries inside a reserved range: named explicitly, so allowed. */
  reservedAllowed: Cidr[]
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

export function compilePolicy(cidrs: Cidr[], outboundInternet: boolean, plan: AddressPlan, domains: string[] = []): EgressPolicy {
  const inVmNet = (c: Cidr) => within(c, plan.vmNet)
  const inReserved = (c: Cidr) => RESERVED.some((r) => within(c, r))
  return {
    mode: cidrs.length > 0 || domains.length > 0 ? 'list' : outboundInternet ? 'all' : 'none',
    allow: cidrs.filter((c) => !inVmNet(c) && !inReserved(c)),
    reservedAllowed: cidrs.filter(inReserved),
    gateway: cidrs.some(inVmNet),
    dns: domains.length > 0 ? 'listed' : outboundInternet ? 'all' : 'none',
    domains,
  }
}
