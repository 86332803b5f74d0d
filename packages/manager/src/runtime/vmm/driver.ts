// The VMM driver interface: the only thing the supervisor (runtime/supervisor/) knows of a
// VMM. Nothing here is QEMU's: a Firecracker driver implements the same verbs (boot, restore,
// reattach, describe; pause, resume, snapshot and kill on the handle) and keeps its own files
// (API socket, pidfile) under the spec's workDir.

/**
 * Guest RAM lives in a file so a snapshot needs no memory stream: a booted VM maps its own
 * file shared (on tmpfs), a clone maps the snapshot's file privately (copy-on-write, shared
 * page cache between clones; the snapshot file never changes).
 */
export interface GuestMemory {
  file: string
  shared: boolean
}

/** A saved device state to resume from instead of booting the kernel. */
export interface SavedState {
  stateFile: string
  /** The state was saved without RAM (it is in the memory file already). */
  withoutRam: boolean
  /** The guest RAM's size when the state was saved (SnapshotResult.ramBytes): a restore must give it the same. */
  ramBytes: number
}

/** The image files a VM boots from. */
export interface BootFiles {
  kernel: string
  /** Absent: the kernel mounts the rootfs itself and runs rds-init from it. */
  initrd?: string
  rootfs: string
}

/** Who the VMM runs as and where its own filesystem view is mounted (see confinement/jail.ts). */
export interface VmmConfinement {
  uid: number
  gid: number
  /** The group of snapshot memory files that clones map (confinement/vmm-user.ts cloneGroupOf). */
  cloneGid: number
  /** An empty root-owned directory of the VM's that the VMM's root is mounted on (in its own mount namespace only). */
  rootDir: string
}

export interface BootSpec {
  vmId: string
  cpu: number
  memMb: number
  kernel: string
  /** Absent: the kernel mounts the rootfs itself and runs rds-init from it. */
  initrd?: string
  /** Shared base rootfs, attached read-only. */
  rootfs: string
  /** The VM's own writable disk. */
  overlay: string
  /** The VMM's run directory: the driver keeps its private files here (see VmmDriver.runFiles), beside the sockets. */
  workDir: string
  controlSocket: string
  bridgeSocket: string
  /** QEMU serves the guest console here; the manager reads it (console-capture.ts). */
  consoleSocket: string
  vmmLog: string
  /** The VM's NIC: a TAP that already exists in the driver's network namespace. */
  net?: { tap: string; mac: string }
  memory: GuestMemory
  /** Absent only for the KVM probe's throwaway VMM: it then runs as the manager's user. */
  confinement?: VmmConfinement
}

export interface SnapshotTarget {
  stateFile: string
  /** Where the guest RAM is copied when it is in a shared file; otherwise RAM goes into the state stream. */
  memoryFile: string
  /** Runs while the guest is paused and its disks are drained (the overlay copy goes here). */
  whilePaused: () => Promise<void>
}

export interface SnapshotResult {
  /** How long the guest was paused for the copy point. */
  pauseMs: number
  /** RAM is in memoryFile (false: it is inside the state stream). */
  memoryInFile: boolean
  /** The guest RAM's size, as the VMM reports it (a VMM may give a guest more than its memMb: VmmDriver.bootRamBytes). */
  ramBytes: number
}

export interface VmExit {
  code: number | null
  signal: string | null
}

export interface VmHandle {
  readonly pid: number
  /** /proc start time of the VMM process; with the pid it identifies the process after a restart. */
  readonly startTime: string
  readonly channels: { control: string; bridge: string; console: string }
  /** Resolves when the VMM process is gone, however it ended. */
  readonly exited: Promise<VmExit>
  isAlive(): boolean
  pause(): Promise<void>
  resume(): Promise<void>
  /** Memory + device state at one point in time; the guest continues afterwards unless it was paused. */
  snapshot(target: SnapshotTarget): Promise<SnapshotResult>
  /** Ask the VMM to quit (no guest cooperation), then SIGKILL after graceMs. */
  kill(graceMs?: number): Promise<void>
}

export interface SavedVmm {
  vmId: string
  pid: number
  startTime: string
  spec: BootSpec
}

export interface VmmDescription {
  /** Which VMM: 'qemu', 'firecracker', 'fake' (tests). */
  vmm: string
  accel: 'kvm' | 'tcg'
}

export interface VmmDriver {
  describe(): VmmDescription
  /** Files (names inside spec.workDir) the driver keeps while a VMM lives; removed with its run. */
  readonly runFiles: readonly string[]
  /** The RAM a VM of memMb MiB boots with (a restore keeps the saved state's): its RAM file is made this size. */
  bootRamBytes(memMb: number): number
  /**
   * Host memory a VMM takes beside its guest's RAM, as the memory budget counts it (MiB): its
   * working set — code, heap, device state and, under TCG, the translation cache — not the
   * cgroup's ceiling. Read at each admission: the accelerator is decided after start.
   */
  vmmOverheadMb(): number
  /** Starts the VMM with a cold kernel boot. Failures are VmmError('start_failed'). */
  boot(spec: BootSpec): Promise<VmHandle>
  /** Starts the VMM from a saved state: running once this resolves. Failures are VmmError('restore_failed'). */
  restore(spec: BootSpec, state: SavedState): Promise<VmHandle>
  /** After a manager restart: the live VMM of this VM, or undefined if it is gone (caller reaps). */
  reattach(saved: SavedVmm): Promise<VmHandle | undefined>
  /** Startup sweep: kills the VMM processes this manager instance started whose VM is not kept; returns their pids. */
  sweep(keep: (vmId: string) => boolean): number[]
}
