// The VMM driver interface. Everything above it (services) talks to a VM through a handle
// and never knows which VMM runs it.

/**
 * Guest RAM lives in a file so a snapshot needs no memory stream: a booted VM maps its own
 * file shared (on tmpfs), a clone maps the snapshot's file privately (copy-on-write, shared
 * page cache between clones; the snapshot file never changes).
 */
export interface GuestMemory {
  file: string
  shared: boolean
}

/** Resume from a saved device state instead of booting the kernel. */
export interface IncomingState {
  stateFile: string
  /** The state was saved without RAM (it is in the memory file already). */
  withoutRam: boolean
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
  controlSocket: string
  bridgeSocket: string
  qmpSocket: string
  pidFile: string
  /** QEMU serves the guest console here; the manager reads it (console-capture.ts). */
  consoleSocket: string
  vmmLog: string
  /** The VM's NIC: a TAP that already exists in the driver's network namespace. */
  net?: { tap: string; mac: string }
  memory: GuestMemory
  incoming?: IncomingState
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

export interface VmmDriver {
  readonly kind: 'qemu'
  readonly accel: 'kvm' | 'tcg'
  /** Starts the VMM: a cold boot, or a resume from `spec.incoming` (running once this resolves). */
  boot(spec: BootSpec): Promise<VmHandle>
  /** After a manager restart: the live VMM of this VM, or undefined if it is gone (caller reaps). */
  reattach(saved: SavedVmm): Promise<VmHandle | undefined>
  /** Pids of VMM processes this manager instance started (found by marker), for the startup sweep. */
  findOwnProcesses(): Array<{ pid: number; vmId: string }>
}
