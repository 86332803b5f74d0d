// What the activity log says about VMs: their state changes as the lifecycle writes them (so no
// change is missed, whoever caused it), and the verbs that change no state (create, delete,
// network policy). Only the caller's VMs: warm-pool and seed VMs are the manager's own.
import type { VmRecord } from '../../store/vms-repo.ts'
import type { StateChange } from '../vm-lifecycle.ts'
import type { ActivityInput } from './activity-log.ts'

/** The event of a state change, or undefined for steps nobody needs to read about (CREATED -> STARTING, -> STOPPING). */
export function stateChangeActivity({ vm, from }: StateChange): ActivityInput | undefined {
  if (vm.purpose !== 'user') return undefined
  const about = { entityType: 'vm', entityId: vm.id }
  switch (vm.state) {
    case 'RUNNING':
      if (from === 'PAUSED') return { ...about, type: 'vm.resumed', message: `VM ${vm.id} resumed` }
      if (from === 'ERROR') return { ...about, type: 'vm.recovered', message: `VM ${vm.id} answers again` }
      return { ...about, type: 'vm.started', message: `VM ${vm.id} started`, meta: { mode: vm.provisionMode, bootMs: vm.bootMs } }
    case 'PAUSED':
      return { ...about, type: 'vm.paused', message: `VM ${vm.id} paused` }
    case 'STOPPED':
      return { ...about, type: 'vm.stopped', message: `VM ${vm.id} stopped` }
    case 'ERROR':
      return { ...about, type: 'vm.failed', message: `VM ${vm.id} failed`, meta: { error: vm.lastError } }
    default:
      return undefined
  }
}

export const vmCreatedActivity = (vm: VmRecord): ActivityInput => ({
  type: 'vm.created',
  entityType: 'vm',
  entityId: vm.id,
  message: `VM ${vm.id} created (${vm.cpu} vCPU, ${vm.memMb} MiB)`,
  meta: { cpu: vm.cpu, memMb: vm.memMb, imageId: vm.imageId, provisionMode: vm.provisionMode, sourceSnapshotId: vm.sourceSnapshotId },
})
