// Finding the caller's VM by id: the one rule every verb on an existing VM starts with.
import { Errors } from '../errors.ts'
import type { VmRecord, VmsRepo } from '../store/vms-repo.ts'

export function createVmLookup(repo: VmsRepo) {
  return {
    /** The caller's VM, or 404; seed and warm-pool VMs are the manager's own, invisible until handed out. */
    async get(id: string): Promise<VmRecord> {
      // The original's guard against clients that interpolate a missing id into the URL.
      const t = id.trim().toLowerCase()
      if (t === '' || t === 'undefined' || t === 'null') throw Errors.invalidVmId()
      const vm = await repo.get(id)
      if (!vm || vm.purpose !== 'user') throw Errors.vmNotFound(id)
      return vm
    },
    /** The caller's VM or undefined, without the 400/404 (peers look providers up this way). */
    async find(id: string): Promise<VmRecord | undefined> {
      const vm = await repo.get(id)
      return vm?.purpose === 'user' ? vm : undefined
    },
    list: async () => (await repo.list()).filter((v) => v.purpose === 'user'),
  }
}
export type VmLookup = ReturnType<typeof createVmLookup>
