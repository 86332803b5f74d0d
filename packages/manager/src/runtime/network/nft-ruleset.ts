// nftables rulesets, as text for `nft -f`. The VM namespace's ruleset is regenerated whole from
// the attached VMs and loaded in one transaction (`flush ruleset` first): the namespace is ours
// alone, so there is never a half-updated state or a stale rule to hunt down. The host table
// is one table of our own, replaced the same way.
//
// Enforcement is per TAP (the interface a packet entered by), never per claimed address: the
// first rules of a VM's chain drop anything that is not IPv4 from the VM's own address.
// Disallowed egress is rejected (ICMP admin-prohibited) so guest programs fail at once instead
// of waiting for a timeout.
import type { AddressPlan } from './address-plan.ts'
import type { EgressPolicy } from './egress-policy.ts'
import { DNS_LIMIT_DEFAULTS, type DnsLimitsOptions } from './dns-limits.ts'
import { formatCidr, type Cidr } from './ipv4.ts'

export interface AttachedVm {
  /** Short key (hex) naming the TAP `vm<key>` and the chain/sets `vm-<key>`. */
  key: string
  tap: string
  address: string
  policy: EgressPolicy
  /**
   * Conntrack mark of connections opened to resolved allowDomains addresses. A new value per
   * policy change: established flows of the old policy stop matching, so a PATCH cuts them too.
   */
  mark: number
  /** Addresses the VM's allowDomains resolved to, with the seconds they stay allowed. */
  resolved: Array<{ address: string; timeoutS: number }>
}

export const TAP_PREFIX = 'vm'
export const UPLINK = 'uplink'
const REJECT = 'reject with icmp type admin-prohibited'

const elements = (cidrs: Cidr[]) => (cidrs.length ? ` elements = { ${cidrs.map(formatCidr).join(', ')} }` : '')

/**
 * DNS packets a VM may send the forwarder, dropped in the kernel beyond this: four times the
 * forwarder's own per-VM limits. Below it the forwarder answers over-limit queries REFUSED; above
 * it a flood would only fill the forwarder's one socket buffer, which every VM's queries share.
 */
export const dnsPacketLimit = (l: DnsLimitsOptions) => ({ perS: 4 * l.ratePerS, burst: 4 * l.burst })

function vmChain(vm: AttachedVm, plan: AddressPlan, dns: { perS: number; burst: number }): string[] {
  const p = vm.policy
  const rules = [
    'meta nfproto != ipv4 drop',
    `ip saddr != ${vm.address} drop`,
    'ct state invalid drop',
    // Answers on connections opened towards the VM, which only the manager's preview proxy can
    // open (forward chain): not egress, so no egress rule applies. The VM's own connections are
    // all in the original direction and go through the policy below, packet by packet.
    'ct direction reply accept',
    `ip daddr ${plan.hostLink} udp dport 53 limit rate over ${dns.perS}/second burst ${dns.burst} packets drop`,
    ...(p.domains.length ? [`ct state established ct mark ${vm.mark} accept`] : []),
    // The gateway address was rewritten to the host end of the link in prerouting.
    ...(p.gateway ? [`ip daddr ${plan.hostLink} accept`] : []),
    ...(p.dns !== 'none' && !p.gateway ? [`ip daddr ${plan.hostLink} udp dport 53 accept`, `ip daddr ${plan.hostLink} tcp dport 53 accept`] : []),
    `ip daddr ${formatCidr(plan.linkNet)} ${REJECT}`,
    `ip daddr ${formatCidr(plan.vmNet)} ${REJECT}`,
    ...(p.excludedAllowed.length ? [`ip daddr @allow-excluded-${vm.key} accept`] : []),
    // Not "the internet": whatever outboundInternet, a broad allowIps entry or a DNS answer says.
    `ip daddr @excluded ${REJECT}`,
    ...(p.mode === 'all' ? ['accept'] : p.mode === 'list' && p.allow.length ? [`ip daddr @allow-${vm.key} accept`] : []),
    // After the rejects above: a name resolving to the host, another VM or metadata gains nothing
    // (the service does not add such answers either: two layers).
    ...(p.domains.length ? [`ip daddr @resolved-${vm.key} ct mark set ${vm.mark} accept`] : []),
    REJECT,
  ]
  const resolved = vm.resolved.map((r) => `${r.address} timeout ${r.timeoutS}s`)
  return [
    `  set allow-${vm.key} { type ipv4_addr; flags interval; auto-merge;${elements(p.allow)} }`,
    `  set allow-excluded-${vm.key} { type ipv4_addr; flags interval; auto-merge;${elements(p.excludedAllowed)} }`,
    `  set resolved-${vm.key} { type ipv4_addr; flags timeout;${resolved.length ? ` elements = { ${resolved.join(', ')} }` : ''} }`,
    `  chain vm-${vm.key} {`,
    ...rules.map((r) => `    ${r}`),
    '  }',
  ]
}

/** The whole ruleset of the VM namespace. */
export function namespaceRuleset(plan: AddressPlan, vms: AttachedVm[], excluded: readonly Cidr[], dnsLimits: DnsLimitsOptions = DNS_LIMIT_DEFAULTS): string {
  const dns = dnsPacketLimit(dnsLimits)
  const ports = vms.map((v) => `"${v.tap}" : jump vm-${v.key}`)
  return [
    'flush ruleset',
    'table inet rds {',
    `  set excluded { type ipv4_addr; flags interval; auto-merge;${elements([...excluded])} }`,
    `  map vm_ports { type ifname : verdict;${ports.length ? ` elements = { ${ports.join(', ')} }` : ''} }`,
    ...vms.flatMap((v) => vmChain(v, plan, dns)),
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    `    iifname "${TAP_PREFIX}*" ip daddr ${plan.gateway} dnat ip to ${plan.hostLink}`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy drop;',
    '    iifname vmap @vm_ports',
    `    iifname "${UPLINK}" oifname "${TAP_PREFIX}*" ct state established,related accept`,
    // The preview proxy: TCP from the host end of the link, i.e. from the host itself (the host
    // table drops what it would forward towards the VMs and lets only the manager's user open these).
    `    iifname "${UPLINK}" oifname "${TAP_PREFIX}*" ip saddr ${plan.hostLink} meta l4proto tcp ct state new accept`,
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy drop;',
    '    iifname "lo" accept',
    '  }',
    '}',
    '',
  ].join('\n')
}

export const hostTableName = (instance: string) => `rds_${instance}`

/** Per-VM connection limits, enforced on the host (see hostRuleset). */
export interface ConnectionLimits {
  /** Connections a VM may have tracked at once (VM_MAX_CONNECTIONS). */
  maxConnections: number
  /** New connections per second a VM may open (VM_NEW_CONNECTIONS_PER_SECOND)… */
  newPerSecond: number
  /** …after a burst of this many (VM_NEW_CONNECTIONS_BURST). */
  newBurst: number
}

/**
 * The host side: traffic from the VM namespace may reach the host only at the link address
 * (gateway services and DNS, already filtered per VM in the namespace), may be forwarded out
 * (masqueraded), and nothing from outside may open a connection towards the VMs.
 *
 * Connection limits live here, keyed by source address (the namespace drops spoofed sources, so
 * the address is the VM), and not in the namespace: its ruleset is reloaded whole on every VM
 * change, which would empty the counts, while this table is loaded once per manager start. Each
 * VM connection that gets here is one entry in the host's conntrack table (and one in the
 * namespace's), so a VM can never hold more than maxConnections of either.
 *
 * `proxyUid`: the manager's user, the only one allowed to open connections to VMs (previews).
 */
export function hostRuleset(plan: AddressPlan, instance: string, hostIf: string, managerPort: number, limits: ConnectionLimits, proxyUid = 0): string {
  const t = hostTableName(instance)
  const fromVms = `iifname "${hostIf}" ip saddr ${formatCidr(plan.vmNet)}`
  return [
    `add table ip ${t}`,
    `delete table ip ${t}`,
    `table ip ${t} {`,
    '  set conns { type ipv4_addr; size 65535; flags dynamic; }',
    '  set newconns { type ipv4_addr; size 65535; flags dynamic,timeout; timeout 60s; }',
    '  chain vm_limits {',
    '    ct state != new return',
    `    add @conns { ip saddr ct count over ${limits.maxConnections} } ${REJECT}`,
    `    add @newconns { ip saddr limit rate over ${limits.newPerSecond}/second burst ${limits.newBurst} packets } ${REJECT}`,
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    // The manager's own API is never a "gateway service", whatever a VM's policy says.
    `    iifname "${hostIf}" tcp dport ${managerPort} drop`,
    `    ${fromVms} ip daddr ${plan.hostLink} jump vm_limits`,
    `    iifname "${hostIf}" ip daddr ${plan.hostLink} accept`,
    `    iifname "${hostIf}" ct state established,related accept`,
    `    iifname "${hostIf}" drop`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    ${fromVms} jump vm_limits`,
    `    ${fromVms} accept`,
    `    iifname "${hostIf}" drop`,
    `    oifname "${hostIf}" ct state established,related accept`,
    `    oifname "${hostIf}" drop`,
    '  }',
    // Connections the host itself opens towards the VMs (the preview proxy): only the manager's
    // user may, so another local account gains no path into a VM by the namespace's preview rule.
    '  chain output {',
    '    type filter hook output priority filter; policy accept;',
    `    oifname "${hostIf}" ip daddr ${formatCidr(plan.vmNet)} ct state new meta skuid != ${proxyUid} ${REJECT}`,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${formatCidr(plan.vmNet)} oifname != "${hostIf}" masquerade`,
    '  }',
    '}',
    '',
  ].join('\n')
}

/** Shared by every manager on the host: it outlives any one of them (see forwardingGuard). */
export const FORWARDING_GUARD = 'rds_forwarding'

/**
 * VM egress needs IPv4 forwarding on the interface it arrives by (the veth) and on those its
 * replies arrive by (the uplinks), and the kernel has no "replies only" setting. So on every
 * interface where a manager had to turn forwarding on, this table lets only replies (and their
 * ICMP errors) be forwarded: the host routes nothing for its LAN, however packets come in.
 * Interfaces where forwarding was already on were made routers by the operator and are left be.
 */
export function forwardingGuard(turnedOn: string[]): string {
  const names = turnedOn.map((n) => `"${n}"`).join(', ')
  return [
    `add table ip ${FORWARDING_GUARD}`,
    `delete table ip ${FORWARDING_GUARD}`,
    `table ip ${FORWARDING_GUARD} {`,
    `  set turned_on { type ifname;${names ? ` elements = { ${names} };` : ''} }`,
    '  chain forward {',
    '    type filter hook forward priority filter - 1; policy accept;',
    '    iifname @turned_on ct state invalid,untracked drop',
    '    iifname @turned_on ct direction original drop',
    '  }',
    '}',
    '',
  ].join('\n')
}

/**
 * Adds resolved addresses to a VM's set without reloading the ruleset; an address already there
 * gets the new timeout (add, delete, add: the first add makes the delete safe).
 */
export function addResolved(key: string, entries: Array<{ address: string; timeoutS: number }>): string {
  const set = `inet rds resolved-${key}`
  return entries.map((e) => `add element ${set} { ${e.address} }\ndelete element ${set} { ${e.address} }\nadd element ${set} { ${e.address} timeout ${e.timeoutS}s }\n`).join('')
}

export const deleteHostTable = (instance: string) => `add table ip ${hostTableName(instance)}\ndelete table ip ${hostTableName(instance)}\n`
