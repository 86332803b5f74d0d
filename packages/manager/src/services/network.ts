// VM networking as the product defines it: addresses from the database, the egress policy of
// each VM (runtime/network/egress-policy.ts), its TAP and rules on the host, the guest's view of
// its network, and the DNS forwarder. The VM service calls in at create, start, delete and
// restart; PATCH /v1/vms/:id/network lands in update().
import type { FastifyBaseLogger } from 'fastify'
import type { GuestNetwork } from '@rds/protocol'
import { Errors } from '../errors.ts'
import { macFor, type AddressPlan } from '../runtime/network/address-plan.ts'
import { DnsForwarder, type DnsAccess } from '../runtime/network/dns-forwarder.ts'
import type { DnsLimitsOptions } from '../runtime/network/dns-limits.ts'
import { compilePolicy, domainAllowed, isExcluded, parseAllowDomains, parseAllowIps, type EgressPolicy } from '../runtime/network/egress-policy.ts'
import { tapName, type HostNetwork } from '../runtime/network/host-network.ts'
import type { Cidr } from '../runtime/network/ipv4.ts'
import type { VmNet } from '../runtime/supervisor/supervisor.ts'
import type { VmRecord, VmsRepo } from '../store/vms-repo.ts'

/** What the VMM and the guest need to bring the VM's NIC up (the supervisor's VmNet). */
export type BootNet = VmNet

export interface NetworkPolicyInput {
  allowIps?: string[]
  allowDomains?: string[]
  outboundInternet?: boolean
}

export interface VmNetworkView {
  guestIp: string | null
  gateway: string
  mac: string | null
  allowIps: string[]
  allowDomains: string[]
  outboundInternet: boolean
  effective: { egress: EgressPolicy['mode']; dns: EgressPolicy['dns']; gatewayServices: boolean }
}

type PolicyFields = Pick<VmRecord, 'allowIps' | 'allowDomains' | 'outboundInternet'>

export function createNetworkService(deps: { plan: AddressPlan; host: HostNetwork; repo: VmsRepo; dnsUpstreams: string[]; dnsLimits?: DnsLimitsOptions; maxAllowIps: number; excluded: readonly Cidr[]; log: FastifyBaseLogger }) {
  const { plan, host, repo, log } = deps
  /** VM address -> what the DNS forwarder does for it; read for every query. */
  const dnsByAddress = new Map<string, DnsAccess>()
  /** VM address -> VM id, for the forwarder's log lines. */
  const vmIdByAddress = new Map<string, string>()
  let forwarder: DnsForwarder | undefined

  /** Only what a request names is counted: lowering MAX_ALLOW_IPS breaks no stored VM. */
  function checkCount(allowIps: string[] | undefined): void {
    if (allowIps && allowIps.length > deps.maxAllowIps) throw Errors.tooManyAllowIps(deps.maxAllowIps)
  }

  function parse(vm: PolicyFields): { cidrs: Cidr[]; domains: string[] } {
    const ips = parseAllowIps(vm.allowIps, plan)
    if ('entry' in ips) throw Errors.invalidAllowIps(ips.entry, ips.reason)
    const names = parseAllowDomains(vm.allowDomains)
    if ('entry' in names) throw Errors.invalidAllowDomains(names.entry, names.reason)
    return { cidrs: ips.cidrs, domains: names.domains }
  }

  function policyOf(vm: PolicyFields): EgressPolicy {
    const { cidrs, domains } = parse(vm)
    return compilePolicy(cidrs, vm.outboundInternet, plan, domains, deps.excluded)
  }

  function dnsAccess(vmId: string, policy: EgressPolicy): DnsAccess {
    if (policy.dns === 'none') return { kind: 'refuse' }
    if (policy.dns === 'all') return { kind: 'any' }
    const onAnswer = (addresses: string[], ttlS: number) => {
      // DNS rebinding: a listed name answering with metadata or a LAN address opens nothing.
      const refused = addresses.filter((a) => isExcluded(a, deps.excluded))
      if (refused.length) log.warn({ vmId, addresses: refused }, 'allowDomains answer points into EGRESS_EXCLUDED_CIDRS (private, link-local or special-purpose); not opened')
      return host.allowResolved(vmId, addresses.filter((a) => !refused.includes(a)), ttlS)
    }
    return { kind: 'listed', allowed: (name) => domainAllowed(policy.domains, name), onAnswer }
  }

  function attachment(vm: VmRecord) {
    if (!vm.guestIp) throw new Error(`VM ${vm.id} has no address`)
    const policy = policyOf(vm)
    dnsByAddress.set(vm.guestIp, dnsAccess(vm.id, policy))
    vmIdByAddress.set(vm.guestIp, vm.id)
    return { vmId: vm.id, address: vm.guestIp, policy }
  }

  async function startDns(): Promise<void> {
    if (forwarder) return
    if (deps.dnsUpstreams.length === 0) log.warn('no DNS upstream (DNS_UPSTREAM unset and none in /etc/resolv.conf): VMs cannot resolve names')
    const f = new DnsForwarder({
      listenAddress: plan.hostLink,
      upstreams: deps.dnsUpstreams,
      access: (address) => dnsByAddress.get(address) ?? { kind: 'refuse' },
      limits: deps.dnsLimits,
      onError: (err) => log.warn({ err: err.message }, 'DNS forwarder error'),
      // At most once per VM per interval (dns-limits.ts): a flood must not become a log flood.
      onLimited: ({ source, refused, total }) => log.warn({ vmId: vmIdByAddress.get(source), address: source, refused, total }, 'DNS queries over the per-VM limit answered REFUSED (DNS_QUERIES_PER_SECOND / DNS_QUERIES_IN_FLIGHT)'),
    })
    try {
      await f.start()
      forwarder = f
    } catch (err) {
      log.error({ err: (err as Error).message, address: plan.hostLink }, 'DNS forwarder could not start; VMs cannot resolve names')
    }
  }

  return {
    plan,
    /** Validates a create request's policy before anything is created (400 invalid_allow_ips / invalid_allow_domains). */
    validate: (input: PolicyFields) => {
      checkCount(input.allowIps)
      parse(input)
    },

    /** Startup: namespace and host rules in place, exactly these VMs attached, DNS listening. */
    async start(vms: VmRecord[]): Promise<{ removedTaps: string[] }> {
      await host.ensure()
      dnsByAddress.clear()
      vmIdByAddress.clear()
      const r = await host.restore(vms.filter((v) => v.guestIp).map(attachment))
      await startDns()
      return r
    },

    async allocate(vmId: string): Promise<string> {
      const address = await repo.assignAddress(vmId, plan.capacity, plan.addressAt, plan.indexOf)
      if (!address) throw Errors.addressPoolExhausted(plan.capacity)
      return address
    },

    /** TAP and rules on the host (idempotent); the result goes to the VMM and the guest. */
    async attach(vm: VmRecord): Promise<BootNet> {
      await startDns()
      try {
        await host.attach(attachment(vm))
      } catch (err) {
        throw Errors.networkFailed((err as Error).message)
      }
      return bootNet(vm)
    },

    /** The NIC of an attached VM (re-attaching to a running VMM after a restart). */
    bootNet: (vm: VmRecord) => (vm.guestIp ? bootNet(vm) : undefined),

    async detach(vm: Pick<VmRecord, 'id' | 'guestIp'>): Promise<void> {
      if (vm.guestIp) {
        dnsByAddress.delete(vm.guestIp)
        vmIdByAddress.delete(vm.guestIp)
        forwarder?.forget(vm.guestIp)
      }
      await host.detach(vm.id)
    },

    /**
     * Changes the policy of a VM at once; returns the stored record. The rules go first: a
     * stored policy the host does not enforce would be a lie to the caller (fail open), so when
     * they cannot be loaded nothing is stored and the old rules stay (500 network_failed).
     */
    async update(vm: VmRecord, input: NetworkPolicyInput): Promise<VmRecord> {
      const next = { ...vm, allowIps: input.allowIps ?? vm.allowIps, allowDomains: input.allowDomains ?? vm.allowDomains, outboundInternet: input.outboundInternet ?? vm.outboundInternet }
      checkCount(input.allowIps)
      policyOf(next)
      if (next.guestIp) await applyPolicy(next)
      try {
        await repo.update(vm.id, { allowIps: next.allowIps, allowDomains: next.allowDomains, outboundInternet: next.outboundInternet })
      } catch (err) {
        if (vm.guestIp) await applyPolicy(vm).catch((undo) => log.error({ vmId: vm.id, err: (undo as Error).message }, 'policy not stored and the old rules could not be restored'))
        throw err
      }
      return next
    },

    /** Whether the VM may send anything at all (run-ts then gets --allow-net, as in the original). */
    hasEgress: (vm: PolicyFields): boolean => policyOf(vm).mode !== 'none',

    view(vm: VmRecord): VmNetworkView {
      const p = policyOf(vm)
      return {
        guestIp: vm.guestIp,
        gateway: plan.gateway,
        mac: vm.guestIp ? macFor(vm.guestIp) : null,
        allowIps: vm.allowIps,
        allowDomains: vm.allowDomains,
        outboundInternet: vm.outboundInternet,
        effective: { egress: p.mode, dns: p.dns, gatewayServices: p.gateway },
      }
    },

    /** Manager shutdown. With no VM left the namespace and host rules go too. */
    async close(vmsLeft: number): Promise<void> {
      await forwarder?.close()
      forwarder = undefined
      if (vmsLeft === 0) await host.teardown()
    },

    taps: () => host.taps(),

    /** What keeps VMs from having a network now (GET /ready), if anything. */
    problem: () => host.problem(),
  }

  async function applyPolicy(vm: VmRecord): Promise<void> {
    const policy = policyOf(vm)
    try {
      await host.update({ vmId: vm.id, address: vm.guestIp!, policy })
    } catch (err) {
      // The reason names host paths and commands: the log gets it, the client does not.
      log.error({ vmId: vm.id, err: (err as Error).message }, 'network policy not applied')
      throw Errors.networkPolicyNotApplied()
    }
    // The resolver follows the rules, never leads them.
    dnsByAddress.set(vm.guestIp!, dnsAccess(vm.id, policy))
  }

  function bootNet(vm: VmRecord): BootNet {
    const address = vm.guestIp!
    const guest: GuestNetwork = { mac: macFor(address), address, prefixLength: plan.vmNet.prefix, gateway: plan.gateway, nameservers: [plan.gateway] }
    return { tap: tapName(vm.id), mac: guest.mac, guest }
  }
}
export type NetworkService = ReturnType<typeof createNetworkService>
