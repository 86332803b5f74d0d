// The verbs on VMs, all in one list: get, list, create, start, stop, pause, resume, remove
// and the network policy. Creating is vm-create.ts (which asks the pool and the seeds);
// running commands and files is vm-exec.ts; snapshots are snapshots.ts. Each lifecycle verb
// runs under the VM's lock, and every state it writes goes through vm-lifecycle.ts; exec &
// files do not take the lock, so requests to one VM never wait on another VM's lifecycle.
import type { RecordActivity } from './activity/activity-log.ts'
import { vmCreatedActivity } from './activity/vm-activity.ts'
import type { Config } from '../config.ts'
import { Errors, knownApiError } from '../errors.ts'
import type { Supervisor } from '../runtime/supervisor/supervisor.ts'
import type { VmRecord, VmsRepo } from '../store/vms-repo.ts'
import type { SnapshotRecord } from '../store/snapshots-repo.ts'
import type { ImageService } from './images.ts'
import type { KeyedLock } from './locks.ts'
import type { NetworkPolicyInput, NetworkService } from './network.ts'
import type { CreateVmInput, VmCreation } from './vm-create.ts'
import { assertState, type Lifecycle } from './vm-lifecycle.ts'
import type { VmLookup } from './vm-lookup.ts'
import { machineOf, type Provisioner } from './vm-provision.ts'

export type { VmRecord }

export function createVmService(deps: {
  config: Pick<Config, 'stopTimeoutMs'>
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

  return {
    get: lookup.get,
    list: lookup.list,
    /** All VMs of this manager, its own included (they hold TAPs too). */
    countAll: async () => (await repo.list()).length,

    async create(input: CreateVmInput): Promise<VmRecord> {
      const vm = await deps.creation.create(input)
      deps.activity(vmCreatedActivity(vm))
      return vm
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
          await lifecycle.transition(id, 'RUNNING', { startedAt: new Date().toISOString(), bootMs, lastError: null })
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
        // A paused guest cannot shut down cleanly; it continues just long enough to do so.
        if (vm.state === 'PAUSED') await supervisor.resume(id)
        await lifecycle.transition(id, 'STOPPING')
        await supervisor.stop(id, config.stopTimeoutMs)
        await lifecycle.transition(id, 'STOPPED', { vmmPid: null, vmmStartTime: null, memorySnapshotId: null })
      })
    },

    /** Freezes the guest's CPUs; memory, disk, network and agent session stay as they are. */
    async pause(id: string): Promise<void> {
      await lock.run(id, async () => {
        assertState(await lookup.get(id), 'pause')
        await supervisor.pause(id)
        await lifecycle.transition(id, 'PAUSED')
      })
    },

    /** Continues a paused guest where it was; its clock is set from the host again. */
    async resume(id: string): Promise<void> {
      await lock.run(id, async () => {
        assertState(await lookup.get(id), 'resume')
        await supervisor.resume(id)
        await lifecycle.transition(id, 'RUNNING')
      })
    },

    /** Removes everything of the VM: process, disks, sockets, directory, logs and its row. */
    async remove(id: string): Promise<void> {
      await lock.run(id, async () => deps.provisioner.destroy(await lookup.get(id)))
      deps.activity({ type: 'vm.deleted', entityType: 'vm', entityId: id, message: `VM ${id} deleted` })
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
