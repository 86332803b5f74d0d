// From a VM's description to the driver's BootSpec: which files, sockets and memory it gets.
import type { GuestNetwork } from '@rds/protocol'
import type { Paths } from '../storage/paths.ts'
import type { BootFiles, BootSpec, GuestMemory } from '../vmm/driver.ts'

/** What the VMM and the guest need to bring the VM's NIC up. */
export interface VmNet {
  tap: string
  mac: string
  guest: GuestNetwork
}

/** Everything the supervisor needs to know of a VM to run it. */
export interface MachineConfig {
  id: string
  cpu: number
  memMb: number
  files: BootFiles
  net?: VmNet
  /** A clone made from a snapshot maps that snapshot's memory file until it is stopped. */
  memorySnapshotId?: string | null
}

/** A saved state to resume from instead of booting the kernel. */
export interface RestorePoint {
  stateFile: string
  memoryFile: string
  /** RAM is in memoryFile (mapped copy-on-write); otherwise it is inside the state stream. */
  memoryInFile: boolean
}

/**
 * Guest memory: a clone maps its snapshot's memory file privately (copy-on-write, one page
 * cache for all clones); everything else has its own shared RAM file, which a snapshot copies.
 */
function memoryOf(paths: Paths, vm: MachineConfig, from: RestorePoint | undefined): GuestMemory {
  if (from?.memoryInFile) return { file: from.memoryFile, shared: false }
  if (!from && vm.memorySnapshotId) return { file: paths.snapshotMemory(vm.memorySnapshotId), shared: false }
  return { file: paths.ramFile(vm.id), shared: true }
}

export function bootSpecOf(paths: Paths, vm: MachineConfig, from?: RestorePoint): BootSpec {
  return {
    vmId: vm.id,
    cpu: vm.cpu,
    memMb: vm.memMb,
    ...vm.files,
    overlay: paths.overlay(vm.id),
    workDir: paths.vmDir(vm.id),
    controlSocket: paths.controlSocket(vm.id),
    bridgeSocket: paths.bridgeSocket(vm.id),
    consoleSocket: paths.consoleSocket(vm.id),
    vmmLog: paths.vmmLog(vm.id),
    ...(vm.net ? { net: { tap: vm.net.tap, mac: vm.net.mac } } : {}),
    memory: memoryOf(paths, vm, from),
  }
}
