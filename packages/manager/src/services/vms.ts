// The verbs on VMs, all in one list: get, list, create, start, stop, pause, resume, remove, extend,
// labels, expire and the network policy. Creating is vm-create.ts (which asks the pool and the seeds);
// running commands and files is vm-exec.ts; snapshots are snapshots.ts. Each lifecycle verb
// runs under the VM's lock, and every state it writes goes through vm-lifecycle.ts; exec &
// files do not take the lock, so requests to one VM never wait on another VM's lifecycle.
import type { RecordActivity } from './activity/activity-log.ts'
import { vmCreatedActivity } from './activity/vm-activity.ts'
import type { Config } from '../config.ts'
import { Errors, knownApiError } from '../errors.ts'
import type { Supervisor } from '../runtime/supervisor/supervisor.ts'
import type { LabelFilter, VmRecord, VmsRepo } from '../store/vms-repo.ts'
import type { SnapshotRecord } from '../store/snapshots-repo.ts'
import type { ImageService } from './images.ts'
import type { KeyedLock } from './locks.ts'
import type { NetworkPolicyInput, NetworkService } from './network.ts'
import type { CreateVmInput, VmCreation } from './vm-create.ts'
import { assertState, type Lifecycle } from './vm-lifecycle.ts'
import type { VmLookup } from './vm-lookup.ts'
import { machineOf, type Provisioner } from './vm-provision.ts'
import { mergeLabels, validateLabels } from './vm-labels.ts'
import { checkTtl, deadline, type TtlConfig } from './vm-ttl.ts'

/** What an expiry did: the VM's own onExpire, or what its state allowed. */
export type ExpiryAction = 'deleted' | 'paused' | 'stopped' | 'clock_stopped'

/** Why an expiry that failed (a VMM that did not pause) is tried again this much later, not at once in a loop. */
const EXPIRY_RETRY_MS = 60_000
/** A VM in the middle of a start or stop when its time came (only after a crash: verbs hold the lock). */
const EXPIRY_BUSY_RETRY_MS = 5_000

export type { VmRecord }

export function createVmService(deps: {
  config: Pick<Config, 'stopTimeoutMs'> & TtlConfig
  repo: VmsRepo
  lookup: VmLookup
  creation: VmCreation
  provisioner: Provisioner
  images: ImageService
  supervisor: Supervisor
  lifecycle: Lifecycle
  network: NetworkService
  locks: KeyedLock
  activity: RecordActivity
}) {
  const { config, repo, lookup, images, supervisor, lifecycle, network } = deps
  const lock = deps.locks
  const reason = (err: unknown) => (err as Error).message
  const clockListeners: Array<(expiresAt: string) => void> = []
  /** A deadline was set: the reaper re-arms if it is earlier than the one it sleeps until. */
  const clockSet = (expiresAt: string | null) => {
    if (expiresAt !== null) for (const l of clockListeners) l(expiresAt)
  }

  /** Shuts the VM down, keeping its disk. Caller holds the lock. */
  async function stopLocked(vm: VmRecord): Promise<void> {
    // A paused guest cannot shut down cleanly; it continues just long enough to do so.
    if (vm.state === 'PAUSED') await supervisor.resume(vm.id)
    await lifecycle.transition(vm.id, 'STOPPING')
    await supervisor.stop(vm.id, config.stopTimeoutMs)
    await lifecycle.transition(vm.id, 'STOPPED', { vmmPid: null, vmmStartTime: null, memorySnapshotId: null })
  }

  /** What the VM's onExpire asks, as far as its state allows. Caller holds the lock. */
  async function expireLocked(vm: VmRecord): Promise<ExpiryAction> {
    if (vm.onExpire === 'delete') {
      await deps.provisioner.destroy(vm)
      return 'deleted'
    }
    switch (vm.state) {
      case 'RUNNING':
        await supervisor.pause(vm.id)
        await lifecycle.transition(vm.id, 'PAUSED', { expiresAt: null })
        return 'paused'
      case 'ERROR':
        // Its VMM may still be running (a silent agent): it must stop costing CPU, as a pause would.
        await stopLocked(vm)
        await repo.update(vm.id, { expiresAt: null })
        return 'stopped'
      default:
        // PAUSED or STOPPED already costs no CPU: only the clock stops.
        await repo.update(vm.id, { expiresAt: null })
        return 'clock_stopped'
    }
  }

  return {
    get: lookup.get,
    /** The caller's VMs, only those carrying every label of `filter` when one is given. */
    list: (filter: LabelFilter = []) => repo.listUser(filter),
    /** All VMs of this manager, its own included (they hold TAPs too). */
    countAll: async () => (await repo.list()).length,

    async create(input: CreateVmInput): Promise<VmRecord> {
      const vm = await deps.creation.create(input)
      deps.activity(vmCreatedActivity(vm))
      if (vm.ttlSeconds === null) return vm
      // The clock starts now that the VM runs: a slow boot under load costs none of its time.
      return lock.run(vm.id, async () => {
        const current = await repo.get(vm.id)
        if (!current) return vm
        const expiresAt = deadline(current.ttlSeconds)
        await repo.update(vm.id, { expiresAt })
        clockSet(expiresAt)
        return { ...current, expiresAt }
      })
    },

    /** A VM spawned from a template's snapshot (services/templates.ts checked the template). */
    async createFromTemplate(input: CreateVmInput, snap: SnapshotRecord, template: string): Promise<VmRecord> {
      const vm = await deps.creation.createFromTemplate(input, snap)
      const entry = vmCreatedActivity(vm)
      deps.activity({ ...entry, meta: { ...entry.meta, template } })
      return vm
    },

    async start(id: string): Promise<void> {
      await lock.run(id, async () => {
        const vm = await lookup.get(id)
        assertState(vm, 'start')
        const image = await images.resolveForBoot(vm.imageId)
        // An ERROR VM may still have a VMM whose agent stopped answering: never run two on one disk.
        await supervisor.kill(id)
        try {
          // A start is a cold boot from the disk: the VM stops mapping any snapshot's memory.
          if (vm.memorySnapshotId) {
            await lifecycle.transition(id, vm.state, { memorySnapshotId: null })
            vm.memorySnapshotId = null
          }
          // VMs created before networking existed get their address on their next start.
          if (!vm.guestIp) vm.guestIp = await network.allocate(id)
          const net = await network.attach(vm)
          const { bootMs } = await supervisor.boot(
            machineOf(vm, image.files, net),
            lifecycle.startingOn(id),
          )
          // A clock that stopped (a pause, a pause on expiry) runs again, for the whole TTL.
          const expiresAt = vm.expiresAt ?? deadline(vm.ttlSeconds)
          await lifecycle.transition(id, 'RUNNING', { startedAt: new Date().toISOString(), bootMs, lastError: null, expiresAt })
          clockSet(expiresAt)
        } catch (err) {
          // The VM keeps its disk: a failed start is an ERROR the user can retry or delete.
          await lifecycle.transition(id, 'ERROR', { lastError: `start failed: ${reason(err)}`, vmmPid: null, vmmStartTime: null })
          const known = knownApiError(err)
          throw known?.code === 'vm_boot_failed' || !known ? Errors.bootFailed(reason(err)) : known
        }
      })
    },

    async stop(id: string): Promise<void> {
      await lock.run(id, async () => {
        const vm = await lookup.get(id)
        assertState(vm, 'stop')
        await stopLocked(vm)
      })
    },

    /** Freezes the guest's CPUs; memory, disk, network and agent session stay as they are. */
    async pause(id: string): Promise<void> {
      await lock.run(id, async () => {
        assertState(await lookup.get(id), 'pause')
        await supervisor.pause(id)
        // A paused VM costs no CPU: its clock stops, and a resume gives it a fresh TTL.
        await lifecycle.transition(id, 'PAUSED', { expiresAt: null })
      })
    },

    /** Continues a paused guest where it was; its clock is set from the host again. */
    async resume(id: string): Promise<void> {
      await lock.run(id, async () => {
        const vm = await lookup.get(id)
        assertState(vm, 'resume')
        await supervisor.resume(id)
        const expiresAt = deadline(vm.ttlSeconds)
        await lifecycle.transition(id, 'RUNNING', { expiresAt })
        clockSet(expiresAt)
      })
    },

    /** Removes everything of the VM: process, disks, sockets, directory, logs and its row. */
    async remove(id: string): Promise<void> {
      await lock.run(id, async () => deps.provisioner.destroy(await lookup.get(id)))
      deps.activity({ type: 'vm.deleted', entityType: 'vm', entityId: id, message: `VM ${id} deleted` })
    },

    /** The clock runs again from now for `ttlSeconds` (also on a VM that had none, or a paused one), which is its TTL from then on. */
    async extend(id: string, ttlSeconds: number): Promise<VmRecord> {
      checkTtl(ttlSeconds, config)
      const vm = await lock.run(id, async () => {
        const current = await lookup.get(id)
        const expiresAt = deadline(ttlSeconds)
        await repo.update(id, { ttlSeconds, expiresAt })
        clockSet(expiresAt)
        return { ...current, ttlSeconds, expiresAt }
      })
      deps.activity({ type: 'vm.extended', entityType: 'vm', entityId: id, message: `VM ${id} now expires at ${vm.expiresAt}`, meta: { ttlSeconds, expiresAt: vm.expiresAt } })
      return vm
    },

    /** Replaces the VM's labels (`merge`: null removes a key, others are set, the rest stay). */
    async setLabels(id: string, labels: Record<string, string | null>, merge: boolean): Promise<VmRecord> {
      const vm = await lock.run(id, async () => {
        const current = await lookup.get(id)
        const next = merge ? mergeLabels(current.labels, labels) : validateLabels(labels as Record<string, string>)
        await repo.setLabels(id, next)
        return { ...current, labels: next }
      })
      deps.activity({ type: 'vm.labels_updated', entityType: 'vm', entityId: id, message: `VM ${id}: labels changed`, meta: { labels: vm.labels } })
      return vm
    },

    /**
     * Acts on the VM if its deadline is still at or before `now` when its lock is taken (an
     * extend, resume, pause or delete in between wins, quietly). Undefined: nothing was due.
     */
    async expire(id: string, now: number): Promise<{ vm: VmRecord; action: ExpiryAction } | undefined> {
      const done = await lock.run(id, async () => {
        const vm = await repo.get(id)
        if (!vm || vm.purpose !== 'user' || vm.expiresAt === null || Date.parse(vm.expiresAt) > now) return undefined
        if (vm.state === 'CREATED' || vm.state === 'STARTING' || vm.state === 'STOPPING') {
          await repo.update(id, { expiresAt: new Date(now + EXPIRY_BUSY_RETRY_MS).toISOString() })
          return undefined
        }
        deps.activity({ type: 'vm.expired', entityType: 'vm', entityId: id, message: `VM ${id} expired (onExpire: ${vm.onExpire})`, meta: { onExpire: vm.onExpire, expiresAt: vm.expiresAt, ttlSeconds: vm.ttlSeconds, state: vm.state } })
        try {
          return { vm, action: await expireLocked(vm) }
        } catch (err) {
          // Left as it is (a failed pause keeps its state): tried again later, never in a tight loop.
          const retry = await repo.get(id)
          if (retry) await repo.update(id, { expiresAt: new Date(Date.now() + EXPIRY_RETRY_MS).toISOString() })
          throw err
        }
      })
      if (done?.action === 'deleted') deps.activity({ type: 'vm.deleted', entityType: 'vm', entityId: id, message: `VM ${id} deleted` })
      return done
    },

    /** Calls `listener` with every deadline set from now on (create, extend, start, resume). */
    onClockSet(listener: (expiresAt: string) => void): void {
      clockListeners.push(listener)
    },

    network: async (id: string) => network.view(await lookup.get(id)),

    /** Applies a new egress policy at once, whatever the VM's state (rules live while the VM exists). */
    async updateNetwork(id: string, input: NetworkPolicyInput) {
      const view = await lock.run(id, async () => network.view(await network.update(await lookup.get(id), input)))
      const { allowIps, allowDomains, outboundInternet } = view
      deps.activity({ type: 'vm.network_updated', entityType: 'vm', entityId: id, message: `VM ${id}: network policy changed`, meta: { allowIps, allowDomains, outboundInternet } })
      return view
    },
  }
}
export type VmService = ReturnType<typeof createVmService>
