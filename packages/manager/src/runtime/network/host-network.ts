// The host side of VM networking: one network namespace per manager instance holding a TAP per
// VM, joined to the host by a veth pair, with the egress policy as nftables in that namespace
// (see nft-ruleset.ts, docs/architecture.md "Networking"). Guest root can change anything in its
// VM; nothing here trusts what the guest says. Operations run one at a time (a queue), so the
// ruleset loaded last always matches the VMs attached last. Addresses opened by allowDomains
// answers do not use that queue (a VM's lookups must not hold up other tenants' API calls): they
// are batched (resolved-batch.ts) and only take turns with ruleset loads at the nft itself.
import crypto from 'node:crypto'
import fs from 'node:fs'
import { run } from '../process/run.ts'
import type { AddressPlan } from './address-plan.ts'
import type { DnsLimitsOptions } from './dns-limits.ts'
import type { EgressPolicy } from './egress-policy.ts'
import { ResolvedBatcher, type ResolvedBatch, type ResolvedEntry } from './resolved-batch.ts'
import { formatCidr, overlaps, parseCidr, type Cidr } from './ipv4.ts'
import { vmmUserOf } from '../vmm/confinement/vmm-user.ts'
import { addResolved, deleteHostTable, FORWARDING_GUARD, forwardingGuard, hostRuleset, namespaceRuleset, TAP_PREFIX, UPLINK, type AttachedVm, type ConnectionLimits } from './nft-ruleset.ts'

/** Every TAP carries this MAC: each is its own link, and a clone's cached gateway entry stays valid. */
export const GATEWAY_MAC = '02:72:00:00:00:01'

export interface VmAttachment {
  vmId: string
  address: string
  policy: EgressPolicy
}

export class NetworkSetupError extends Error {}

export interface HostNetworkOptions {
  /** Not "the internet" (EGRESS_EXCLUDED_CIDRS). */
  excluded: readonly Cidr[]
  limits: ConnectionLimits
  /** The forwarder's per-VM limits; the namespace drops DNS packets well beyond them. */
  dnsLimits?: DnsLimitsOptions
  /** VMM_UID_BASE: each TAP is owned by its VM's VMM uid, which attaches to it without CAP_NET_ADMIN. */
  vmmUidBase?: number
}

/** The host end of any manager's veth (`rds` + 10 hex): its own manager turns its forwarding on. */
const MANAGER_VETH = /^rds[0-9a-f]{10}$/
const forwardingPath = (ifname: string) => `/proc/sys/net/ipv4/conf/${ifname}/forwarding`

/** What one manager instance owns on the host, by name (runtime/reclaim finds them by these). */
export const netnsOf = (instance: string) => `rds-${instance}`
export const hostIfOf = (instance: string) => `rds${instance}`.slice(0, 15)

export const tapKey = (vmId: string) => crypto.createHash('sha256').update(vmId).digest('hex').slice(0, 12)
export const tapName = (vmId: string) => `${TAP_PREFIX}${tapKey(vmId)}`

interface LinkInfo {
  ifname: string
  linkinfo?: { info_kind?: string }
}

export class HostNetwork {
  readonly netns: string
  readonly netnsPath: string
  readonly hostIf: string
  private readonly attached = new Map<string, AttachedVm>()
  /** vmId -> resolved allowDomains address -> expiry (ms), kept across ruleset reloads. */
  private readonly resolved = new Map<string, Map<string, number>>()
  private nextMark = 1 + Math.floor(Math.random() * 2 ** 30)
  private queue: Promise<unknown> = Promise.resolve()
  /** Turns at running nft in the namespace: the serial queue's reloads and the resolved batches. */
  private nftTurn: Promise<unknown> = Promise.resolve()
  private readonly resolvedBatches = new ResolvedBatcher<AttachedVm>((batch) => this.addResolvedBatch(batch))
  private ready: Promise<void> | undefined
  private readonly plan: AddressPlan
  private readonly instance: string

  private readonly managerPort: number
  private readonly o: HostNetworkOptions

  constructor(plan: AddressPlan, instance: string, managerPort: number, o: HostNetworkOptions) {
    this.plan = plan
    this.instance = instance
    this.managerPort = managerPort
    this.o = o
    this.netns = netnsOf(instance)
    this.netnsPath = `/run/netns/${this.netns}`
    this.hostIf = hostIfOf(instance)
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn)
    this.queue = next.catch(() => {})
    return next
  }

  /**
   * One nft run in the namespace at a time. Two parties only (the serial queue and the batcher,
   * each one at a time), so a reload waits for at most one batch: a resolved addition must not
   * land between a reload reading the resolved addresses and loading them, nor in a set that a
   * PATCH has just replaced.
   */
  private nftExclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.nftTurn.then(fn, fn)
    this.nftTurn = next.catch(() => {})
    return next
  }

  /**
   * What is wrong with the host side of the VM network now, if anything (GET /ready): the
   * namespace and the host end of its link, read from the filesystem without running a command.
   */
  problem(): string | undefined {
    if (!this.ready) return 'the VM network has not been set up'
    if (!fs.existsSync(this.netnsPath)) return `the VM network namespace ${this.netns} is missing`
    let state: string
    try {
      state = fs.readFileSync(`/sys/class/net/${this.hostIf}/operstate`, 'utf8').trim()
    } catch {
      return `the host link ${this.hostIf} to the VM network is missing`
    }
    return state === 'up' ? undefined : `the host link ${this.hostIf} to the VM network is ${state}`
  }

  /** Creates the namespace, link, routes, sysctls and host rules if missing; idempotent. */
  ensure(): Promise<void> {
    this.ready ??= this.serial(() => this.setUp()).catch((err) => {
      this.ready = undefined
      throw err
    })
    return this.ready
  }

  /** Gives the VM its TAP and rules; returns what the VMM needs. */
  async attach(vm: VmAttachment): Promise<{ tap: string; mac: string }> {
    await this.ensure()
    return this.serial(async () => {
      const a = this.toAttached(vm)
      if ((await this.links()).some((l) => l.ifname === a.tap)) await this.ip(['-n', this.netns, 'link', 'del', a.tap])
      await this.ipBatch(this.tapCommands(a), true)
      this.attached.set(vm.vmId, a)
      await this.loadRules()
      return { tap: a.tap, mac: GATEWAY_MAC }
    })
  }

  /**
   * Replaces the VM's policy at once (rules are evaluated per packet, existing flows included).
   * When the ruleset cannot be loaded, the old one stays in force and so does the old policy
   * here: the next reload of any other VM must not quietly apply a policy that was refused.
   */
  async update(vm: VmAttachment): Promise<void> {
    await this.ensure()
    await this.serial(async () => {
      const before = { attached: this.attached.get(vm.vmId), resolved: this.resolved.get(vm.vmId) }
      this.resolved.delete(vm.vmId)
      this.attached.set(vm.vmId, this.toAttached(vm))
      try {
        await this.loadRules()
      } catch (err) {
        if (before.attached) this.attached.set(vm.vmId, before.attached)
        else this.attached.delete(vm.vmId)
        if (before.resolved) this.resolved.set(vm.vmId, before.resolved)
        throw err
      }
    })
  }

  /** Lets the VM reach what one of its allowDomains resolved to, for the answer's TTL (clamped). */
  async allowResolved(vmId: string, addresses: string[], ttlS: number): Promise<void> {
    const a = this.attached.get(vmId)
    if (!a || addresses.length === 0) return
    const timeoutS = Math.min(3600, Math.max(60, Math.round(ttlS)))
    await this.resolvedBatches.add(a, addresses.map((address) => ({ address, timeoutS })))
  }

  /** One nft transaction for the whole batch; if it fails, one per VM, so one VM's failure stays its own. */
  private addResolvedBatch(batch: ResolvedBatch<AttachedVm>): Promise<Map<AttachedVm, Error>> {
    return this.nftExclusive(async () => {
      const failed = new Map<AttachedVm, Error>()
      const live: Array<[AttachedVm, ResolvedEntry[]]> = []
      for (const [a, entries] of batch) {
        // Attached with these rules still (not detached, not re-attached, no PATCH since the answer).
        const vmId = [...this.attached].find(([, b]) => b === a)?.[0]
        if (!vmId) {
          failed.set(a, new Error('the VM was detached or its policy changed while its lookup was answered'))
          continue
        }
        const mine = this.resolved.get(vmId) ?? new Map<string, number>()
        this.resolved.set(vmId, mine)
        for (const e of entries) mine.set(e.address, Date.now() + e.timeoutS * 1000)
        live.push([a, entries])
      }
      const nft = (text: string) => run('nsenter', [`--net=${this.netnsPath}`, 'nft', '-f', '-'], { input: text })
      if (live.length === 0) return failed
      try {
        await nft(live.map(([a, entries]) => addResolved(a.key, entries)).join(''))
      } catch {
        for (const [a, entries] of live) await nft(addResolved(a.key, entries)).catch((err: Error) => failed.set(a, err))
      }
      return failed
    })
  }

  /** Removes the VM's TAP and rules; a VM that was never attached is fine. */
  async detach(vmId: string): Promise<void> {
    if (!fs.existsSync(this.netnsPath)) return
    await this.serial(async () => {
      this.attached.delete(vmId)
      this.resolved.delete(vmId)
      const tap = tapName(vmId)
      if ((await this.links()).some((l) => l.ifname === tap)) await this.ip(['-n', this.netns, 'link', 'del', tap])
      await this.loadRules()
    })
  }

  /**
   * Startup: the given VMs are the only ones attached afterwards. Their TAPs are (re)created
   * when missing, every other TAP in the namespace is deleted and the ruleset rebuilt.
   */
  async restore(vms: VmAttachment[]): Promise<{ removedTaps: string[] }> {
    await this.ensure()
    return this.serial(async () => {
      this.attached.clear()
      for (const vm of vms) this.attached.set(vm.vmId, this.toAttached(vm))
      const wanted = new Set([...this.attached.values()].map((a) => a.tap))
      const links = await this.links()
      const removedTaps = links.filter((l) => l.linkinfo?.info_kind === 'tun' && !wanted.has(l.ifname)).map((l) => l.ifname)
      const present = new Set(links.map((l) => l.ifname))
      const cmds = removedTaps.map((t) => `link del ${t}`)
      for (const a of this.attached.values()) cmds.push(...(present.has(a.tap) ? this.tapAddressing(a) : this.tapCommands(a)))
      if (cmds.length) await this.ipBatch(cmds, true)
      await this.loadRules()
      return { removedTaps }
    })
  }

  /** Deletes the namespace (with its TAPs and link) and the host table. */
  async teardown(): Promise<void> {
    await this.serial(async () => {
      this.attached.clear()
      if (fs.existsSync(this.netnsPath)) await this.ip(['netns', 'del', this.netns])
      await run('nft', ['-f', '-'], { input: deleteHostTable(this.instance) })
      await releaseForwarding()
      this.ready = undefined
    })
  }

  /** TAP devices present in the namespace (for the reconciler, operations and tests). */
  async taps(): Promise<string[]> {
    if (!fs.existsSync(this.netnsPath)) return []
    return (await this.links()).filter((l) => l.linkinfo?.info_kind === 'tun').map((l) => l.ifname)
  }

  private toAttached(vm: VmAttachment): AttachedVm {
    return { key: tapName(vm.vmId).slice(TAP_PREFIX.length), tap: tapName(vm.vmId), address: vm.address, policy: vm.policy, mark: this.nextMark++, resolved: [] }
  }

  private tapCommands(a: AttachedVm): string[] {
    // The owner is fixed at creation (a TAP cannot be re-owned while it exists): a start re-creates it.
    const owner = this.o.vmmUidBase === undefined ? undefined : vmmUserOf(this.o.vmmUidBase, a.address)
    const user = owner ? ` user ${owner.uid} group ${owner.gid}` : ''
    return [`tuntap add dev ${a.tap} mode tap${user}`, `link set dev ${a.tap} address ${GATEWAY_MAC}`, ...this.tapAddressing(a)]
  }

  /** The gateway address on every TAP and a host route to the VM through its own TAP only. */
  private tapAddressing(a: AttachedVm): string[] {
    return [`link set dev ${a.tap} up`, `addr replace ${this.plan.gateway}/32 dev ${a.tap}`, `route replace ${a.address}/32 dev ${a.tap}`]
  }

  private async setUp(): Promise<void> {
    // Before anything is created: a manager that cannot run here must leave nothing behind.
    await this.checkRouteConflicts()
    const created = !fs.existsSync(this.netnsPath)
    try {
      await this.build()
    } catch (err) {
      if (created) {
        await this.ip(['netns', 'del', this.netns]).catch(() => {})
        await run('nft', ['-f', '-'], { input: deleteHostTable(this.instance) }).catch(() => {})
      }
      throw err
    }
  }

  private async build(): Promise<void> {
    const p = this.plan
    if (!fs.existsSync(this.netnsPath)) await this.ip(['netns', 'add', this.netns])
    const hostLinks = JSON.parse(await this.ip(['-j', 'link', 'show'])) as LinkInfo[]
    if (!hostLinks.some((l) => l.ifname === this.hostIf)) {
      await this.ip(['-n', this.netns, 'link', 'del', UPLINK]).catch(() => {})
      await this.ip(['link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', UPLINK, 'netns', this.netns])
    }
    // Namespace first: forwarding, strict reverse-path filtering (a second anti-spoof layer), no IPv6.
    await run('nsenter', [`--net=${this.netnsPath}`, 'sysctl', '-q', '-e', '-w',
      'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=1', 'net.ipv4.conf.default.rp_filter=1',
      'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'])
    await this.ipBatch([`addr replace ${p.nsLink}/30 dev ${UPLINK}`, `link set dev ${UPLINK} up`, 'link set dev lo up', `route replace default via ${p.hostLink} dev ${UPLINK}`], true)
    try {
      fs.writeFileSync(`/proc/sys/net/ipv6/conf/${this.hostIf}/disable_ipv6`, '1')
    } catch {
      // IPv6 disabled on the host altogether
    }
    await this.ipBatch([`addr replace ${p.hostLink}/30 dev ${this.hostIf}`, `link set dev ${this.hostIf} up`, `route replace ${formatCidr(p.vmNet)} via ${p.nsLink} dev ${this.hostIf}`], false)
    await run('nft', ['-f', '-'], { input: hostRuleset(p, this.instance, this.hostIf, this.managerPort, this.o.limits, process.geteuid?.() ?? 0) })
    // Egress leaves through the host's own routing, but never host-wide net.ipv4.ip_forward:
    // that would make the host a router for its LAN (see forwardingGuard, docs/operations.md).
    fs.writeFileSync(forwardingPath(this.hostIf), '1')
    await this.enableUplinkForwarding()
    await this.loadRules()
  }

  /**
   * Forwarding on the interfaces that VM replies come back by: every interface with a route
   * (the VM path may use any of them). Those where it was off are put in the guard first, so
   * there is no moment at which they forward anything but replies.
   */
  private async enableUplinkForwarding(): Promise<void> {
    const routes = JSON.parse(await this.ip(['-j', '-4', 'route', 'show', 'table', 'all'])) as Array<{ dev?: string; type?: string }>
    const devs = new Set(routes.filter((r) => r.dev && (!r.type || r.type === 'unicast')).map((r) => r.dev!))
    const off = [...devs].filter((d) => d !== 'lo' && d !== this.hostIf && !MANAGER_VETH.test(d) && readSysctl(forwardingPath(d)) === '0')
    if (off.length === 0) return
    // Names of interfaces that are gone are dropped: a new one by that name starts unguarded and off.
    const guarded = (await guardedInterfaces()).filter((d) => readSysctl(forwardingPath(d)) !== undefined)
    await run('nft', ['-f', '-'], { input: forwardingGuard([...new Set([...guarded, ...off])]) })
    for (const d of off) fs.writeFileSync(forwardingPath(d), '1')
  }

  /** A host route to (part of) the VM network through another device would steal the VMs' traffic. */
  private async checkRouteConflicts(): Promise<void> {
    const routes = JSON.parse(await this.ip(['-j', '-4', 'route', 'show', 'table', 'all'])) as Array<{ dst?: string; dev?: string; type?: string }>
    for (const r of routes) {
      if (!r.dst || r.dst === 'default' || r.dev === this.hostIf || (r.type && r.type !== 'unicast')) continue
      const c = parseCidr(r.dst)
      if (c && c.prefix > 0 && overlaps(c, this.plan.vmNet)) {
        throw new NetworkSetupError(`VM_NETWORK_CIDR ${formatCidr(this.plan.vmNet)} overlaps the host route ${r.dst} on ${r.dev}; choose another VM_NETWORK_CIDR (and VM_LINK_CIDR) for this manager`)
      }
    }
  }

  private loadRules(): Promise<string> {
    return this.nftExclusive(() => this.loadRulesNow())
  }

  private loadRulesNow(): Promise<string> {
    const now = Date.now()
    const vms = [...this.attached.entries()].map(([vmId, a]) => ({
      ...a,
      resolved: [...(this.resolved.get(vmId) ?? new Map<string, number>())].filter(([, exp]) => exp > now + 1000).map(([address, exp]) => ({ address, timeoutS: Math.ceil((exp - now) / 1000) })),
    }))
    return run('nsenter', [`--net=${this.netnsPath}`, 'nft', '-f', '-'], { input: namespaceRuleset(this.plan, vms, this.o.excluded, this.o.dnsLimits) })
  }

  private async links(): Promise<LinkInfo[]> {
    return JSON.parse(await this.ip(['-n', this.netns, '-j', '-d', 'link', 'show'])) as LinkInfo[]
  }

  private ip(args: string[]): Promise<string> {
    return run('ip', args)
  }

  private ipBatch(cmds: string[], inNamespace: boolean): Promise<string> {
    return run('ip', [...(inNamespace ? ['-n', this.netns] : []), '-batch', '-'], { input: cmds.join('\n') + '\n' })
  }
}

/**
 * The last manager on the host to go turns off the forwarding that managers turned on; so does
 * the reclamation of a dead manager's leftovers (runtime/reclaim) when it removed the last table.
 */
export async function releaseForwarding(): Promise<void> {
  const tables = JSON.parse(await run('nft', ['-j', 'list', 'tables', 'ip'])) as { nftables: Array<{ table?: { name: string } }> }
  if (tables.nftables.some((e) => e.table && /^rds_[0-9a-f]{10}$/.test(e.table.name))) return
  for (const d of await guardedInterfaces()) {
    try {
      fs.writeFileSync(forwardingPath(d), '0')
    } catch {
      // the interface is gone
    }
  }
  await run('nft', ['-f', '-'], { input: `add table ip ${FORWARDING_GUARD}\ndelete table ip ${FORWARDING_GUARD}\n` })
}

async function guardedInterfaces(): Promise<string[]> {
  try {
    const r = JSON.parse(await run('nft', ['-j', 'list', 'set', 'ip', FORWARDING_GUARD, 'turned_on'])) as { nftables: Array<{ set?: { elem?: string[] } }> }
    return r.nftables.flatMap((e) => e.set?.elem ?? [])
  } catch {
    return []
  }
}

function readSysctl(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim()
  } catch {
    return undefined
  }
}
