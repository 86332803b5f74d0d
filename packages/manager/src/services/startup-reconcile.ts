// Startup reconciliation: every VM of this manager ends up running and usable or cleanly
// stopped, and no VMM process, socket, RAM file or directory of this instance is left that
// no VM owns. Runs once, before the API serves.
import fsp from 'node:fs/promises'
import type { Paths } from '../runtime/storage/paths.ts'
import type { Supervisor } from '../runtime/supervisor/supervisor.ts'
import type { VmsRepo } from '../store/vms-repo.ts'
import type { ImageService } from './images.ts'
import type { KeyedLock } from './locks.ts'
import type { NetworkService } from './network.ts'
import { LIVE_STATES, type Lifecycle } from './vm-lifecycle.ts'
import { machineOf } from './vm-provision.ts'

export interface ReconcileSummary {
  reattached: string[]
  stopped: string[]
  removed: string[]
  reaped: number[]
  removedTaps: string[]
}

export async function reconcileAtStartup(deps: {
  paths: Paths
  repo: VmsRepo
  images: ImageService
  supervisor: Supervisor
  lifecycle: Lifecycle
  network: NetworkService
  locks: KeyedLock
}): Promise<ReconcileSummary> {
  const { paths, repo, supervisor, network } = deps
  const out = { reattached: [] as string[], stopped: [] as string[], removed: [] as string[] }
  for (const vm of await repo.listInStates([...LIVE_STATES, 'CREATED'])) {
    await deps.locks.run(vm.id, async () => {
      const image = await deps.images.resolveForBoot(vm.imageId).catch(() => undefined)
      // A seed or template build does not survive a restart (the seed is started again, the
      // template marked failed: nothing would ever finish or remove its VM); a warm VM does.
      const keep = vm.purpose !== 'seed' && vm.purpose !== 'template' && (vm.state === 'RUNNING' || vm.state === 'PAUSED')
      const machine = image && machineOf(vm, image.files, network.bootNet(vm))
      if (keep && machine && (await supervisor.reattach(machine, { pid: vm.vmmPid, startTime: vm.vmmStartTime, paused: vm.state === 'PAUSED' }))) {
        out.reattached.push(vm.id)
        return
      }
      if (vm.provisionMode === null || vm.purpose !== 'user') {
        // A create that never finished, or a manager VM that is gone: undo it completely.
        await supervisor.kill(vm.id)
        await supervisor.removeRuntimeFiles(vm.id)
        await fsp.rm(paths.vmDir(vm.id), { recursive: true, force: true })
        await repo.remove(vm.id)
        out.removed.push(vm.id)
      } else {
        await supervisor.removeRuntimeFiles(vm.id)
        const lastError = vm.state === 'RUNNING' ? 'VM was not running after a manager restart' : `manager restarted while the VM was ${vm.state}`
        await deps.lifecycle.transition(vm.id, 'STOPPED', { vmmPid: null, vmmStartTime: null, memorySnapshotId: null, lastError })
        out.stopped.push(vm.id)
      }
    })
  }
  const reaped = supervisor.reapStrays()
  const remaining = await repo.list()
  const known = new Set(remaining.map((v) => v.id))
  for (const dir of await fsp.readdir(paths.vmsRoot).catch(() => [] as string[])) {
    if (!known.has(dir)) await fsp.rm(`${paths.vmsRoot}/${dir}`, { recursive: true, force: true })
  }
  const running = new Set(supervisor.ids())
  for (const file of await fsp.readdir(paths.ramRoot).catch(() => [] as string[])) {
    if (!running.has(file.replace(/\.ram$/, ''))) await fsp.rm(`${paths.ramRoot}/${file}`, { force: true })
  }
  // TAPs and rules for exactly the VMs that remain; anything else in the namespace goes.
  const { removedTaps } = await network.start(remaining)
  return { ...out, reaped, removedTaps }
}
