// Admission of guest RAM: a booted VM's memory is a file on the RAM directory's tmpfs, and a
// guest touching a page of a full tmpfs kills its VMM (SIGBUS). So a VM only boots when its
// whole RAM fits next to the files already there, and the file is made at its full size
// before the VMM starts. Clones map their snapshot's memory file privately and take no room here;
// the guest memory budget (supervisor/memory-budget.ts) counts them and booted VMs alike.
import fs from 'node:fs'
import { VmmError } from '../vmm/vmm-error.ts'

/**
 * Creates `file` (`bytes` long, sparse) in `ramRoot` if the filesystem can hold it next to the
 * other RAM files. Synchronous on purpose: two boots cannot both take the last room.
 */
export function reserveRam(ramRoot: string, file: string, bytes: number): void {
  const st = fs.statfsSync(ramRoot)
  const capacity = st.blocks * st.bsize
  let reserved = 0
  for (const f of fs.readdirSync(ramRoot)) reserved += fs.statSync(`${ramRoot}/${f}`).size
  if (reserved + bytes > capacity) {
    const freeMb = Math.max(0, Math.floor((capacity - reserved) / 1024 / 1024))
    // Named in the VM's MiB: a TCG guest's 8 KiB more (vmm/qemu/guest-ram.ts) is not worth a word.
    throw new VmmError('ram_exhausted', `not enough room for guest memory in ${ramRoot}`, { dir: ramRoot, freeMb, memMb: Math.round(bytes / 1024 / 1024) })
  }
  const fd = fs.openSync(file, 'w', 0o600)
  try {
    fs.ftruncateSync(fd, bytes)
  } finally {
    fs.closeSync(fd)
  }
}
