// The VMM driver interface. Everything above it (services) talks to a VM through a handle
// and never knows which VMM runs it. Snapshot/restore join this interface with the
// snapshot work; they are not declared before they exist.

export interface BootSpec {
  vmId: string
  cpu: number
  memMb: number
  kernel: string
  initrd: string
  /** Shared base rootfs, attached read-only. */
  rootfs: string
  /** The VM's own writable disk. */
  overlay: string
  controlSocket: string
  bridgeSocket: string
  qmpSocket: string
  pidFile: string
  consoleLog: string
  vmmLog: string
  /** The VM's NIC: a TAP that already exists in the driver's network namespace. */
  net?: { tap: string; mac: string }
}

export interface VmExit {
  code: number | null
  signal: string | null
}

export interface VmHandle {
  readonly pid: number
  /** /proc start time of the VMM process; with the pid it identifies the process after a restart. */
  readonly startTime: string
  readonly channels: { control: string; bridge: string }
  /** Resolves when the VMM process is gone, however it ended. */
  readonly exited: Promise<VmExit>
  isAlive(): boolean
  pause(): Promise<void>
  resume(): Promise<void>
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
  boot(spec: BootSpec): Promise<VmHandle>
  /** After a manager restart: the live VMM of this VM, or undefined if it is gone (caller reaps). */
  reattach(saved: SavedVmm): Promise<VmHandle | undefined>
  /** Pids of VMM processes this manager instance started (found by marker), for the startup sweep. */
  findOwnProcesses(): Array<{ pid: number; vmId: string }>
}
