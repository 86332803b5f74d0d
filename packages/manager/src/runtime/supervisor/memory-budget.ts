// Admission of guest memory against the host's RAM, for every VMM this manager runs. The RAM
// directory check (storage/ram-admission.ts) only sees booted VMs, whose memory is a tmpfs
// file; a clone maps its snapshot's memory file privately, so every page it writes becomes
// anonymous memory of its QEMU that no file shows. Counted here instead: each live VM holds
// its whole memMb (the most its guest can make the host back), booted or restored alike, and
// what its VMM takes for itself (VmmDriver.vmmOverheadMb: under TCG mostly the translation
// cache), without which the default budget admitted 82 VMs of 256 MiB on a 24 GiB host whose
// VMMs could grow to ~35 GB (47 with it).
import { VmmError } from '../vmm/vmm-error.ts'

const MiB = 1024 * 1024

/**
 * The default budget: MemTotal less a reserve for the host itself (the manager, the page cache
 * the shared images and snapshot files live in): 1/8 of the RAM, at least 1 GiB.
 * VM_MEMORY_BUDGET_MB replaces it (above MemTotal to overcommit knowingly).
 */
export function defaultMemoryBudgetMb(meminfo: string): number {
  const kb = Number(/^MemTotal:\s+(\d+) kB$/m.exec(meminfo)?.[1])
  if (!Number.isFinite(kb) || kb <= 0) throw new Error('cannot read MemTotal from /proc/meminfo; set VM_MEMORY_BUDGET_MB')
  const totalMb = Math.floor((kb * 1024) / MiB)
  return Math.max(0, totalMb - Math.max(1024, Math.floor(totalMb / 8)))
}

export class MemoryBudget {
  readonly budgetMb: number
  private readonly held = new Map<string, number>()

  constructor(budgetMb: number) {
    this.budgetMb = budgetMb
  }

  get usedMb(): number {
    let sum = 0
    for (const mb of this.held.values()) sum += mb
    return sum
  }

  /**
   * Takes the guest's `memMb` and its VMM's `overheadMb` for the VM, or throws
   * memory_budget_exhausted. Synchronous: two starts cannot both take the last room.
   */
  admit(vmId: string, memMb: number, overheadMb: number): void {
    const used = this.usedMb - (this.held.get(vmId) ?? 0)
    if (used + memMb + overheadMb > this.budgetMb) {
      throw new VmmError('memory_budget_exhausted', `VM memory budget exhausted (${used} of ${this.budgetMb} MiB in use, ${memMb} + ${overheadMb} MiB needed)`, {
        budgetMb: this.budgetMb,
        usedMb: used,
        memMb,
        overheadMb,
      })
    }
    this.held.set(vmId, memMb + overheadMb)
  }

  /** A VMM found running after a manager restart: counted, never refused (it runs already). */
  hold(vmId: string, memMb: number, overheadMb: number): void {
    this.held.set(vmId, memMb + overheadMb)
  }

  release(vmId: string): void {
    this.held.delete(vmId)
  }

  clear(): void {
    this.held.clear()
  }
}
