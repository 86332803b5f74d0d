// One cgroup per VMM process, under a parent named after the manager instance, so that a
// compromised QEMU (or a TCG guest that makes QEMU grow) is held to the VM's shape: memory,
// CPU time and the number of tasks. The host may mount cgroup v2 (one tree, controllers
// enabled through cgroup.subtree_control) or v1 (one tree per controller, as on this project's
// development machines, whose v2 tree has no controllers): both are handled, with the same limits.
//
// The VMM is put in its cgroup before it runs: the driver spawns it through a shell that writes
// its own pid into every `cgroup.procs` file, then execs (the pid stays the VMM's). Joining after
// spawn would let QEMU run (and allocate) unconfined for a moment.
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { VmmError } from '../vmm-error.ts'

export type CgroupLayout = { kind: 'v2'; root: string } | { kind: 'v1'; root: string }

const CONTROLLERS = ['memory', 'cpu', 'pids'] as const

/** The hierarchy the host gives us, or undefined when it has neither a usable v2 tree nor the three v1 controllers. */
export function detectCgroupLayout(root = '/sys/fs/cgroup'): CgroupLayout | undefined {
  const controllers = readOr(path.join(root, 'cgroup.controllers'), '').split(/\s+/)
  if (CONTROLLERS.every((c) => controllers.includes(c))) return { kind: 'v2', root }
  if (CONTROLLERS.every((c) => fs.existsSync(path.join(root, c, 'cgroup.procs')))) return { kind: 'v1', root }
  return undefined
}

export interface VmmLimits {
  memoryBytes: number
  pids: number
  cpuQuotaUs: number
  cpuPeriodUs: number
}

const MiB = 1024 * 1024
/**
 * What QEMU needs besides guest RAM (measured, docs/operations.md): its own heap, libraries and
 * device state, about 60 MiB under KVM; under TCG also the translated-code buffer, which grows
 * to 1 GiB on a host with more than 8 GiB of RAM (QEMU 7.2's default) while the guest runs
 * new code. Hitting the limit kills the VMM (the VM fails), so these are ceilings, not estimates.
 */
export const QEMU_OVERHEAD_MIB = { kvm: 256, tcg: 1024 + 384 } as const
/** Main loop, RCU, one thread per vCPU, and the block layer's worker pool (at most 64). */
const BASE_TASKS = 80
const CPU_PERIOD_US = 100_000

/** The limits of a VMM of this shape: guest RAM plus QEMU's own, vCPUs × period of CPU time. */
export function vmmLimits(shape: { cpu: number; memMb: number }, accel: 'kvm' | 'tcg'): VmmLimits {
  return {
    memoryBytes: (shape.memMb + QEMU_OVERHEAD_MIB[accel]) * MiB,
    pids: BASE_TASKS + shape.cpu,
    cpuQuotaUs: shape.cpu * CPU_PERIOD_US,
    cpuPeriodUs: CPU_PERIOD_US,
  }
}

/** A VM's cgroup name; also what the startup sweep recognises. */
const VM_PREFIX = 'vm-'
/** Removing waits this long for the last task to leave (a killed QEMU exits within milliseconds). */
const REMOVE_TIMEOUT_MS = 5000

export class VmmCgroups {
  readonly parentName: string
  private readonly layout: CgroupLayout

  constructor(layout: CgroupLayout, instance: string) {
    this.layout = layout
    this.parentName = `rds-${instance}`
  }

  /** Names of every manager instance's parent cgroup on the host (reclamation of dead instances). */
  static instanceParents(layout: CgroupLayout): string[] {
    const top = layout.kind === 'v2' ? [layout.root] : CONTROLLERS.map((c) => path.join(layout.root, c))
    return [...new Set(top.flatMap((d) => readdirOr(d)).filter((n) => /^rds-[0-9a-f]{10}$/.test(n)))]
  }

  /** The directories of one cgroup name: one per controller tree under v1, one under v2. */
  private dirs(name: string): string[] {
    const { root } = this.layout
    return this.layout.kind === 'v2' ? [path.join(root, name)] : CONTROLLERS.map((c) => path.join(root, c, name))
  }

  private vmName(vmId: string): string {
    return path.join(this.parentName, `${VM_PREFIX}${vmId}`)
  }

  /** Creates (or reuses) the VM's cgroup with `limits` set; returns the `cgroup.procs` files the VMM must join. */
  prepare(vmId: string, limits: VmmLimits): string[] {
    try {
      if (this.layout.kind === 'v2') {
        // Controllers reach a child only when every ancestor enables them for its children.
        enableControllers(this.layout.root)
        fs.mkdirSync(path.join(this.layout.root, this.parentName), { recursive: true })
        enableControllers(path.join(this.layout.root, this.parentName))
      }
      for (const dir of this.dirs(this.vmName(vmId))) fs.mkdirSync(dir, { recursive: true })
      for (const [file, value] of this.limitFiles(limits)) fs.writeFileSync(path.join(this.layout.root, file(this.vmName(vmId))), value)
    } catch (err) {
      throw new VmmError('start_failed', `could not set up the VMM's cgroup: ${(err as Error).message}`, {}, { cause: err })
    }
    return this.dirs(this.vmName(vmId)).map((d) => path.join(d, 'cgroup.procs'))
  }

  /** The limits a VM's cgroup has now (tests, diagnostics). */
  read(vmId: string): VmmLimits | undefined {
    const at = (file: (n: string) => string) => readOr(path.join(this.layout.root, file(this.vmName(vmId))), '').trim()
    const files = this.limitFiles({ memoryBytes: 0, pids: 0, cpuQuotaUs: 0, cpuPeriodUs: 0 }).map(([f]) => f)
    const values = files.map(at)
    if (values.some((v) => v === '')) return undefined
    if (this.layout.kind === 'v2') {
      const [quota, period] = values[2]!.split(' ')
      return { memoryBytes: Number(values[0]), pids: Number(values[1]), cpuQuotaUs: Number(quota), cpuPeriodUs: Number(period) }
    }
    return { memoryBytes: Number(values[0]), pids: Number(values[1]), cpuPeriodUs: Number(values[2]), cpuQuotaUs: Number(values[3]) }
  }

  /** Files (relative to the layout root) and values, in the order they must be written. */
  private limitFiles(l: VmmLimits): Array<[(name: string) => string, string]> {
    if (this.layout.kind === 'v2') {
      return [
        [(n) => path.join(n, 'memory.max'), String(l.memoryBytes)],
        [(n) => path.join(n, 'pids.max'), String(l.pids)],
        [(n) => path.join(n, 'cpu.max'), `${l.cpuQuotaUs} ${l.cpuPeriodUs}`],
      ]
    }
    // v1 refuses a quota that does not fit the current period: set the period first.
    return [
      [(n) => path.join('memory', n, 'memory.limit_in_bytes'), String(l.memoryBytes)],
      [(n) => path.join('pids', n, 'pids.max'), String(l.pids)],
      [(n) => path.join('cpu', n, 'cpu.cfs_period_us'), String(l.cpuPeriodUs)],
      [(n) => path.join('cpu', n, 'cpu.cfs_quota_us'), String(l.cpuQuotaUs)],
    ]
  }

  /** Removes the VM's cgroup once its tasks are gone, and the instance's parent when it was the last. */
  async remove(vmId: string): Promise<void> {
    const deadline = Date.now() + REMOVE_TIMEOUT_MS
    for (const dir of this.dirs(this.vmName(vmId))) {
      // EBUSY: the VMM (or a task of it) has not finished exiting.
      while (!rmdirIfThere(dir)) {
        if (Date.now() > deadline) throw new VmmError('control_failed', `cgroup ${dir} still has tasks`)
        await sleep(20)
      }
    }
    // Another VM's cgroup keeps it (EBUSY, ENOTEMPTY): it goes with the last one.
    for (const dir of this.dirs(this.parentName)) rmdirIfThere(dir)
  }

  /**
   * Every task in a VM cgroup of this instance: VMMs, and the launch chain of one being started
   * (it joins its cgroup before it execs QEMU, so its command line does not carry the marker yet).
   */
  tasks(): number[] {
    const procs = this.dirs(this.parentName).flatMap((parent) =>
      readdirOr(parent).filter((n) => n.startsWith(VM_PREFIX)).map((vm) => readOr(path.join(parent, vm, 'cgroup.procs'), '')),
    )
    return [...new Set(procs.flatMap((p) => p.split('\n')).filter(Boolean).map(Number))]
  }

  /** Startup sweep: the cgroups of VMs that are not kept (their VMM is gone or being killed). */
  async sweep(keep: (vmId: string) => boolean): Promise<void> {
    const names = new Set(this.dirs(this.parentName).flatMap((d) => readdirOr(d)).filter((n) => n.startsWith(VM_PREFIX)))
    for (const name of names) {
      const vmId = name.slice(VM_PREFIX.length)
      if (!keep(vmId)) await this.remove(vmId)
    }
    for (const dir of this.dirs(this.parentName)) rmdirIfThere(dir)
  }
}

function enableControllers(dir: string): void {
  const enabled = readOr(path.join(dir, 'cgroup.subtree_control'), '').split(/\s+/)
  const missing = CONTROLLERS.filter((c) => !enabled.includes(c))
  if (missing.length) fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '))
}

/** True when `dir` is gone; false while it still has tasks or children. */
function rmdirIfThere(dir: string): boolean {
  try {
    fs.rmdirSync(dir)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return true
    if (code === 'EBUSY' || code === 'ENOTEMPTY') return false
    throw err
  }
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return fallback
  }
}

function readdirOr(dir: string): string[] {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}
