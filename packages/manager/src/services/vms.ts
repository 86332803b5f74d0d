// The verbs on existing VMs: get, list, start, stop, pause, resume, remove, the network
// policy, and the startup reconciliation (creating VMs is vm-create.ts). Each lifecycle verb
// runs under the VM's lock; exec & files (vm-exec.ts) do not take it, so requests to one VM
// never wait on another VM's lifecycle.
import fsp from 'node:fs/promises'
import type { Config } from '../config.ts'
import { Errors } from '../errors.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import type { VmmDriver } from '../runtime/vmm/driver.ts'
import type { ExecLogsRepo } from '../store/exec-logs-repo.ts'
import type { VmRecord, VmsRepo } from '../store/vms-repo.ts'
import type { ImageService } from './images.ts'
import type { KeyedLock } from './locks.ts'
import type { Machines } from './machines.ts'
import type { NetworkPolicyInput, NetworkService } from './network.ts'
import type { PeerLinks } from './peers/peer-links.ts'
import { assertState, LIVE_STATES } from './vm-states.ts'

export function createVmService(deps: {
  config: Config
  paths: Paths
  repo: VmsRepo
  execLogs: ExecLogsRepo
  images: ImageService
  machines: Machines
  network: NetworkService
  locks: KeyedLock
  driver: VmmDriver
  /** A getter: links are forgotten with their VM (peer-links needs this service itself). */
  peers: () => PeerLinks
  /** A VM stopped mapping a snapshot's memory file (a dropped image seed may be removed now). */
  onMemoryReleased?: (snapshotId: string) => void
}) {
  const { config, paths, repo, images, machines, network } = deps
  const lock = deps.locks

  async function mustGet(id: string): Promise<VmRecord> {
    // The original's guard against clients that interpolate a missing id into the URL.
    const t = id.trim().toLowerCase()
    if (t === '' || t === 'undefined' || t === 'null') throw Errors.invalidVmId()
    const vm = await repo.get(id)
    // Seed and warm-pool VMs are the manager's own: invisible until handed out.
    if (!vm || vm.purpose !== 'user') throw Errors.vmNotFound(id)
    return vm
  }

  const reason = (err: unknown) => (err as Error).message

  async function destroy(vm: VmRecord): Promise<void> {
    await machines.kill(vm.id)
    await network.detach(vm)
    await fsp.rm(paths.vmDir(vm.id), { recursive: true, force: true })
    await deps.execLogs.removeForVm(vm.id)
    await deps.peers().forget(vm.id)
    await repo.remove(vm.id)
    if (vm.memorySnapshotId) deps.onMemoryReleased?.(vm.memorySnapshotId)
  }

  return {
    get: mustGet,
    list: async () => (await repo.list()).filter((v) => v.purpose === 'user'),
    /** All VMs of this manager, its own included (they hold TAPs too). */
    countAll: async () => (await repo.list()).length,

    async start(id: string): Promise<void> {
      await lock.run(id, async () => {
        const vm = await mustGet(id)
        assertState(vm, 'start')
        const image = await images.resolveForBoot(vm.imageId)
        // An ERROR VM may still have a VMM whose agent stopped answering: never run two on one disk.
        await machines.kill(id)
        try {
          // A start is a cold boot from the disk: the VM stops mapping any snapshot's memory.
          if (vm.memorySnapshotId) {
            await repo.update(id, { memorySnapshotId: null })
            deps.onMemoryReleased?.(vm.memorySnapshotId)
            vm.memorySnapshotId = null
          }
          // VMs created before networking existed get their address on their next start.
          if (!vm.guestIp) vm.guestIp = await network.allocate(id)
          const net = await network.attach(vm)
          const { bootMs } = await machines.boot(vm, image.files, net)
          await repo.update(id, { state: 'RUNNING', startedAt: new Date().toISOString(), bootMs, lastError: null })
        } catch (err) {
          // The VM keeps its disk: a failed start is an ERROR the user can retry or delete.
          await repo.update(id, { state: 'ERROR', lastError: `start failed: ${reason(err)}`, vmmPid: null, vmmStartTime: null })
          throw Errors.bootFailed(reason(err))
        }
      })
    },

    async stop(id: string): Promise<void> {
      await lock.run(id, async () => {
        const vm = await mustGet(id)
        assertState(vm, 'stop')
        // A paused guest cannot shut down cleanly; it continues just long enough to do so.
        if (vm.state === 'PAUSED') await machines.resume(id)
        await repo.update(id, { state: 'STOPPING' })
        await machines.stop(id, config.stopTimeoutMs)
        await repo.update(id, { state: 'STOPPED', vmmPid: null, vmmStartTime: null, memorySnapshotId: null })
        if (vm.memorySnapshotId) deps.onMemoryReleased?.(vm.memorySnapshotId)
      })
    },

    /** Freezes the guest's CPUs; memory, disk, network and agent session stay as they are. */
    async pause(id: string): Promise<void> {
      await lock.run(id, async () => {
        assertState(await mustGet(id), 'pause')
        await machines.pause(id)
        await repo.update(id, { state: 'PAUSED' })
      })
    },

    /** Continues a paused guest where it was; its clock is set from the host again. */
    async resume(id: string): Promise<void> {
      await lock.run(id, async () => {
        assertState(await mustGet(id), 'resume')
        await machines.resume(id)
        await repo.update(id, { state: 'RUNNING' })
      })
    },

    /** Removes everything of the VM: process, disks, sockets, directory, logs and its row. */
    async remove(id: string): Promise<void> {
      await lock.run(id, async () => destroy(await mustGet(id)))
    },

    /** The manager's own VMs (seed, pool) go the same way, by id and without the user filter. */
    async removeInternal(id: string): Promise<void> {
      await lock.run(id, async () => {
        const vm = await repo.get(id)
        if (vm) await destroy(vm)
      })
    },

    /**
     * Startup reconciliation: every VM ends up running and usable or cleanly stopped, and no
     * VMM process, socket or directory of this instance is left that no VM owns.
     */
    async reconcile(): Promise<{ reattached: string[]; stopped: string[]; removed: string[]; reaped: number[]; removedTaps: string[] }> {
      const out = { reattached: [] as string[], stopped: [] as string[], removed: [] as string[], reaped: [] as number[] }
      for (const vm of await repo.listInStates([...LIVE_STATES, 'CREATED'])) {
        const image = await images.resolveForBoot(vm.imageId).catch(() => undefined)
        // A seed build does not survive a restart (it is started again); a warm VM does.
        const keep = vm.purpose !== 'seed' && (vm.state === 'RUNNING' || vm.state === 'PAUSED')
        if (keep && image && (await machines.reattach(vm, image.files, network.bootNet(vm)))) {
          out.reattached.push(vm.id)
          continue
        }
        if (vm.provisionMode === null || vm.purpose !== 'user') {
          // A create that never finished, or a manager VM that is gone: undo it completely.
          await machines.kill(vm.id)
          await machines.removeRuntimeFiles(vm.id)
          await fsp.rm(paths.vmDir(vm.id), { recursive: true, force: true })
          await repo.remove(vm.id)
          out.removed.push(vm.id)
        } else {
          await machines.removeRuntimeFiles(vm.id)
          const lastError = vm.state === 'RUNNING' ? 'VM was not running after a manager restart' : `manager restarted while the VM was ${vm.state}`
          await repo.update(vm.id, { state: 'STOPPED', vmmPid: null, vmmStartTime: null, memorySnapshotId: null, lastError })
          out.stopped.push(vm.id)
        }
      }
      const owned = new Set(machines.ids())
      for (const p of deps.driver.findOwnProcesses()) {
        if (owned.has(p.vmId)) continue
        try {
          process.kill(p.pid, 'SIGKILL')
          out.reaped.push(p.pid)
        } catch {
          // gone meanwhile
        }
      }
      const remaining = await repo.list()
      const known = new Set(remaining.map((v) => v.id))
      for (const dir of await fsp.readdir(paths.vmsRoot).catch(() => [] as string[])) {
        if (!known.has(dir)) await fsp.rm(`${paths.vmsRoot}/${dir}`, { recursive: true, force: true })
      }
      const running = new Set(machines.ids())
      for (const file of await fsp.readdir(paths.ramRoot).catch(() => [] as string[])) {
        if (!running.has(file.replace(/\.ram$/, ''))) await fsp.rm(`${paths.ramRoot}/${file}`, { force: true })
      }
      // TAPs and rules for exactly the VMs that remain; anything else in the namespace goes.
      const { removedTaps } = await network.start(remaining)
      return { ...out, removedTaps }
    },

    network: async (id: string) => network.view(await mustGet(id)),

    /** Applies a new egress policy at once, whatever the VM's state (rules live while the VM exists). */
    async updateNetwork(id: string, input: NetworkPolicyInput) {
      return lock.run(id, async () => network.view(await network.update(await mustGet(id), input)))
    },
  }
}
export type VmService = ReturnType<typeof createVmService>
