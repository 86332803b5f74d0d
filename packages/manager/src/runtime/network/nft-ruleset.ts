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
import { RESERVED } from './egress-policy.ts'
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

function vmChain(vm: AttachedVm, plan: AddressPlan): string[] {
  const p = vm.policy
  const rules = [
    'meta nfproto != ipv4 drop',
    `ip saddr != ${vm.address} drop`,
    'ct state invalid drop',
    ...(p.domains.length ? [`ct state established ct mark ${vm.mark} accept`] : []),
    // The gateway address was rewritten to the host end of the link in prerouting.
    ...(p.gateway ? [`ip daddr ${plan.hostLink} accept`] : []),
    ...(p.dns !== 'none' && !p.gateway ? [`ip daddr ${plan.hostLink} udp dport 53 accept`, `ip daddr ${plan.hostLink} tcp dport 53 accept`] : []),
    `ip daddr ${formatCidr(plan.linkNet)} ${REJECT}`,
    `ip daddr ${formatCidr(plan.vmNet)} ${REJECT}`,
    ...(p.reservedAllowed.length ? [`ip daddr @allow-reserved-${vm.key} accept`] : []),
    `ip daddr @reserved ${REJECT}`,
    ...(p.mode === 'all' ? ['accept'] : p.mode === 'list' && p.allow.length ? [`ip daddr @allow-${vm.key} accept`] : []),
    // After the rejects above: a name resolving to the host, another VM or metadata gains nothing.
    ...(p.domains.length ? [`ip daddr @resolved-${vm.key} ct mark set ${vm.mark} accept`] : []),
    REJECT,
  ]
  const resolved = vm.resolved.map((r) => `${r.address} timeout ${r.timeoutS}s`)
  return [
    `  set allow-${vm.key} { type ipv4_addr; flags interval; auto-merge;${elements(p.allow)} }`,
    `  set allow-reserved-${vm.key} { type ipv4_addr; flags interval; auto-merge;${elements(p.reservedAllowed)} }`,
    `  set resolved-${vm.key} { type ipv4_addr; flags timeout;${resolved.length ? ` elements = { ${resolved.join(', ')} }` : ''} }`,
    `  chain vm-${vm.key} {`,
    ...rules.map((r) => `    ${r}`),
    '  }',
  ]
}

/** The whole ruleset of the VM namespace. */
export function namespaceRuleset(plan: AddressPlan, vms: AttachedVm[]): string {
  const ports = vms.map((v) => `"${v.tap}" : jump vm-${v.key}`)
  return [
    'flush ruleset',
    'table inet rds {',
    `  set reserved { type ipv4_addr; flags interval;${elements([...RESERVED])} }`,
    `  map vm_ports { type ifname : verdict;${ports.length ? ` elements = { ${ports.join(', ')} }` : ''} }`,
    ...vms.flatMap((v) => vmChain(v, plan)),
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    `    iifname "${TAP_PREFIX}*" ip daddr ${plan.gateway} dnat ip to ${plan.hostLink}`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy drop;',
    '    iifname vmap @vm_ports',
    `    iifname "${UPLINK}" oifname "${TAP_PREFIX}*" ct state established,related accept`,
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

/**
 * The host side: traffic from the VM namespace may reach the host only at the link address
 * (gateway services and DNS, already filtered per VM in the namespace), may be forwarded out
 * (masqueraded), and nothing from outside may open a connection towards the VMs.
 */
export function hostRuleset(plan: AddressPlan, instance: string, hostIf: string, managerPort: number): string {
  const t = hostTableName(instance)
  return [
    `add table ip ${t}`,
    `delete table ip ${t}`,
    `table ip ${t} {`,
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    // The manager's own API is never a "gateway service", whatever a VM's policy says.
    `    iifname "${hostIf}" tcp dport ${managerPort} drop`,
    `    iifname "${hostIf}" ip daddr ${plan.hostLink} accept`,
    `    iifname "${hostIf}" ct state established,related accept`,
    `    iifname "${hostIf}" drop`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    iifname "${hostIf}" ip saddr ${formatCidr(plan.vmNet)} accept`,
    `    iifname "${hostIf}" drop`,
    `    oifname "${hostIf}" ct state established,related accept`,
    `    oifname "${hostIf}" drop`,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${formatCidr(plan.vmNet)} oifname != "${hostIf}" masquerade`,
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
