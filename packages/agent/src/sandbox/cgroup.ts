// One cgroup per exec/run, so a timeout can kill everything the user started (background jobs,
// setsid'd daemons) with one write to cgroup.kill. Without cgroup2 the agent still works but
// falls back to killing the process group, which a second setsid() escapes. All of them live in
// one parent group whose limits bound the user's code as a whole: a fork or memory bomb runs
// into those (and the OOM killer picks inside the group), while the agent, outside it, keeps
// its memory, its processes and most of the CPU.
import fs from 'node:fs'
import path from 'node:path'
import { log } from '../log.ts'

export class CgroupManager {
  readonly #parent: string
  #available: boolean | undefined
  /** Groups that still had processes (background jobs) when their exec returned. */
  readonly #lingering = new Set<string>()
  #sweepTimer: NodeJS.Timeout | undefined

  constructor(cgroupRoot: string) {
    this.#parent = cgroupRoot ? path.join(cgroupRoot, 'rds') : ''
  }

  /** Returns the new group's directory, or undefined when cgroups are unavailable. */
  create(id: string): string | undefined {
    if (this.#available === false || !this.#parent) return undefined
    try {
      if (this.#available === undefined) {
        fs.mkdirSync(this.#parent, { recursive: true, mode: 0o755 })
        if (!fs.existsSync(path.join(this.#parent, 'cgroup.procs'))) throw new Error(`${this.#parent} is not a cgroup2 directory`)
        applyUserLimits(this.#parent, userLimits())
        this.#available = true
      }
      const dir = path.join(this.#parent, `exec-${id}`)
      fs.mkdirSync(dir, { mode: 0o755 })
      return dir
    } catch (e) {
      this.#available = false
      log.warn(`cgroups unavailable, falling back to process-group kill: ${(e as Error).message}`)
      return undefined
    }
  }

  kill(dir: string): void {
    try {
      fs.writeFileSync(path.join(dir, 'cgroup.kill'), '1')
      return
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log.warn(`cgroup.kill failed for ${dir}: ${(e as Error).message}`)
    }
    // Kernels before 5.14 have no cgroup.kill; freeze so nothing forks while we kill the members.
    try {
      fs.writeFileSync(path.join(dir, 'cgroup.freeze'), '1')
    } catch {}
    for (const pid of readPids(dir)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
    }
    try {
      fs.writeFileSync(path.join(dir, 'cgroup.freeze'), '0')
    } catch {}
  }

  /** Removes the group now if empty, else remembers it and retries later. */
  release(dir: string): void {
    if (!tryRemove(dir)) {
      this.#lingering.add(dir)
      this.#scheduleSweep()
    }
  }

  sweep(): void {
    for (const dir of this.#lingering) if (tryRemove(dir)) this.#lingering.delete(dir)
  }

  #scheduleSweep(): void {
    if (this.#sweepTimer) return
    this.#sweepTimer = setInterval(() => {
      this.sweep()
      if (this.#lingering.size === 0) {
        clearInterval(this.#sweepTimer)
        this.#sweepTimer = undefined
      }
    }, 5_000)
    this.#sweepTimer.unref()
  }
}

export interface UserLimits {
  pidsMax: number
  memoryMaxBytes: number | undefined
  /** Relative to the agent's 100 (cgroup v2 default): user code gets the CPU the agent leaves. */
  cpuWeight: number
}

/**
 * Processes all user code may have at once, scaled to its memory: measured in a 256 MiB VM, a fork
 * bomb capped at 128 or 256 processes dies at its timeout with the agent answering at once, while
 * at 1024 the processes' kernel memory and reclaim starve the agent for over a minute. One per
 * 512 KiB of the group's memory (288 in a 256 MiB VM), at most 1024: far above real workloads.
 */
const PIDS_PER_BYTES = 512 * 1024
const USER_PIDS_MIN = 64
const USER_PIDS_MAX = 1024
/** Memory kept for the kernel, the agent (~55 MB) and its runs' bookkeeping, beyond 5 % of the VM. */
const AGENT_RESERVE_BYTES = 64 * 1024 * 1024

export function userLimits(meminfo: string = readFile('/proc/meminfo')): UserLimits {
  const kib = Number(/^MemTotal:\s+(\d+) kB/m.exec(meminfo)?.[1])
  const total = Number.isFinite(kib) && kib > 0 ? kib * 1024 : undefined
  const memoryMaxBytes = total === undefined ? undefined : Math.max(32 * 1024 * 1024, Math.floor(total - AGENT_RESERVE_BYTES - total * 0.05))
  const pidsMax = memoryMaxBytes === undefined ? USER_PIDS_MAX : Math.min(USER_PIDS_MAX, Math.max(USER_PIDS_MIN, Math.floor(memoryMaxBytes / PIDS_PER_BYTES)))
  return { pidsMax, memoryMaxBytes, cpuWeight: 20 }
}

function applyUserLimits(parent: string, limits: UserLimits): void {
  const settings: Array<[string, string | undefined]> = [
    ['pids.max', String(limits.pidsMax)],
    ['memory.max', limits.memoryMaxBytes === undefined ? undefined : String(limits.memoryMaxBytes)],
    ['cpu.weight', String(limits.cpuWeight)],
  ]
  for (const [file, value] of settings) {
    if (value === undefined) continue
    try {
      fs.writeFileSync(path.join(parent, file), value)
    } catch (e) {
      log.warn(`cannot set ${file} on ${parent}: ${(e as Error).message}`)
    }
  }
}

function readFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

function readPids(dir: string): number[] {
  try {
    return fs
      .readFileSync(path.join(dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(Number)
  } catch {
    return []
  }
}

function tryRemove(dir: string): boolean {
  try {
    fs.rmdirSync(dir)
    return true
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return true
    if (code !== 'EBUSY') log.warn(`cannot remove cgroup ${dir}: ${(e as Error).message}`)
    return false
  }
}
