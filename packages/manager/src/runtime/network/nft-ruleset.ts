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
    // The gateway address was rewritten to the host end of the link in prerouting.
    ...(p.gateway ? [`ip daddr ${plan.hostLink} accept`] : []),
    ...(p.dns && !p.gateway ? [`ip daddr ${plan.hostLink} udp dport 53 accept`, `ip daddr ${plan.hostLink} tcp dport 53 accept`] : []),
    `ip daddr ${formatCidr(plan.linkNet)} ${REJECT}`,
    `ip daddr ${formatCidr(plan.vmNet)} ${REJECT}`,
    ...(p.reservedAllowed.length ? [`ip daddr @allow-reserved-${vm.key} accept`] : []),
    `ip daddr @reserved ${REJECT}`,
    ...(p.mode === 'all' ? ['accept'] : p.mode === 'list' && p.allow.length ? [`ip daddr @allow-${vm.key} accept`] : []),
    REJECT,
  ]
  return [
    `  set allow-${vm.key} { type ipv4_addr; flags interval; auto-merge;${elements(p.allow)} }`,
    `  set allow-reserved-${vm.key} { type ipv4_addr; flags interval; auto-merge;${elements(p.reservedAllowed)} }`,
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
export function hostRuleset(plan: AddressPlan, instance: string, hostIf: string): string {
  const t = hostTableName(instance)
  return [
    `add table ip ${t}`,
    `delete table ip ${t}`,
    `table ip ${t} {`,
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
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

export const deleteHostTable = (instance: string) => `add table ip ${hostTableName(instance)}\ndelete table ip ${hostTableName(instance)}\n`
