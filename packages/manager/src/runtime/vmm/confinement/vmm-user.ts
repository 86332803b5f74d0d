// The host user a VM's VMM runs as. Every VM has a uid and gid of its own (as Firecracker's
// jailer gives each microVM), so a compromised VMM can open only what belongs to its VM: not the
// manager's files and not another VM's disk, RAM or sockets, which a single shared VMM user could.
//
// The uid is derived from the VM's address, which is unique among the manager's VMs, known when
// the TAP is made (its owner must be that uid: the VMM attaches to it without CAP_NET_ADMIN) and
// the same again after a manager restart, so nothing is stored. Only the low 24 bits are used (a
// uid is 32 bits): managers sharing a host need VMM_UID_BASEs 2^24 apart (docs/operations.md).
import { parseCidr } from '../../network/ipv4.ts'

export interface VmmUser {
  uid: number
  gid: number
}

/** The low 24 bits of the address: a VM network is at most a /16 and never x.0.0.0, so 0 is free for the clone group. */
const ADDRESS_BITS = 0xffffff

export function vmmUserOf(base: number, address: string): VmmUser {
  const c = parseCidr(address)
  if (!c || c.prefix !== 32) throw new Error(`not a VM address: ${address}`)
  const id = base + (c.base & ADDRESS_BITS)
  return { uid: id, gid: id }
}

/**
 * The group that may open snapshots' memory files read-write. A clone maps its snapshot's
 * memory privately (copy-on-write), but QEMU 7.2 opens a memory-backend-file O_RDWR all the
 * same (its `rom=on` arrived in 8.2); each clone only sees its own snapshot's file (jail.ts).
 */
export const cloneGroupOf = (base: number) => base
