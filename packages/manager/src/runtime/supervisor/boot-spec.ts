// From a VM's description to the driver's BootSpec: which files, sockets and memory it gets.
import type { GuestNetwork } from '@rds/protocol'
import type { Paths } from '../storage/paths.ts'
import path from 'node:path'
import type { BootFiles, BootSpec, GuestMemory, VmmConfinement } from '../vmm/driver.ts'
import { cloneGroupOf, vmmUserOf } from '../vmm/confinement/vmm-user.ts'

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
  /** The guest RAM's size when it was saved: the restored VMM gets the same. */
  ramBytes: number
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

/** The VMM's own uid/gid (from the VM's address) and root; none without a VMM_UID_BASE or an address. */
function confinementOf(paths: Paths, vm: MachineConfig, uidBase: number | undefined): VmmConfinement | undefined {
  if (uidBase === undefined || !vm.net) return undefined
  return { ...vmmUserOf(uidBase, vm.net.guest.address), cloneGid: cloneGroupOf(uidBase), rootDir: paths.vmmRoot(vm.id) }
}

export function bootSpecOf(paths: Paths, vm: MachineConfig, from?: RestorePoint, uidBase?: number): BootSpec {
  const confinement = confinementOf(paths, vm, uidBase)
  return {
    vmId: vm.id,
    cpu: vm.cpu,
    memMb: vm.memMb,
    ...vm.files,
    overlay: paths.overlay(vm.id),
    workDir: paths.runDir(vm.id),
    controlSocket: paths.controlSocket(vm.id),
    bridgeSocket: paths.bridgeSocket(vm.id),
    consoleSocket: paths.consoleSocket(vm.id),
    vmmLog: paths.vmmLog(vm.id),
    ...(vm.net ? { net: { tap: vm.net.tap, mac: vm.net.mac } } : {}),
    memory: memoryOf(paths, vm, from),
    ...(confinement ? { confinement } : {}),
  }
}

/**
 * A VMM started by a manager before VMMs had a run directory of their own kept its sockets in
 * the VM's directory: re-attaching to it after the upgrade uses those paths.
 */
export function bootSpecBeforeRunDir(paths: Paths, spec: BootSpec): BootSpec {
  const dir = paths.vmDir(spec.vmId)
  const at = (p: string) => path.join(dir, path.basename(p))
  // It runs unconfined (as root, in the host's root): its paths are the host's.
  const { confinement: _unconfined, ...rest } = spec
  return { ...rest, workDir: dir, controlSocket: at(spec.controlSocket), bridgeSocket: at(spec.bridgeSocket), consoleSocket: at(spec.consoleSocket) }
}
