// The host's CPU, memory and disk as the admin overview shows them, read from /proc and statfs.
import fs from 'node:fs'
import os from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'

export interface HostUsage {
  cpu: { usagePct: number | null; capacityCores: number }
  memory: { usedBytes: number; capacityBytes: number }
  storage: { usedBytes: number; capacityBytes: number }
}

/** Busy and total jiffies of all CPUs (the first line of /proc/stat). */
function cpuTimes(): { busy: number; total: number } | undefined {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? ''
  const n = line.trim().split(/\s+/).slice(1).map(Number)
  if (n.length < 4 || n.some((x) => !Number.isFinite(x))) return undefined
  const idle = (n[3] ?? 0) + (n[4] ?? 0) // idle + iowait
  const total = n.reduce((a, b) => a + b, 0)
  return { busy: total - idle, total }
}

/** MemTotal minus MemAvailable: what the kernel could not give to a new process now. */
export function memoryFrom(meminfo: string): { usedBytes: number; capacityBytes: number } {
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(meminfo)?.[1] ?? NaN)
  const total = kb('MemTotal')
  const available = kb('MemAvailable')
  if (!Number.isFinite(total)) return { usedBytes: os.totalmem() - os.freemem(), capacityBytes: os.totalmem() }
  return { usedBytes: (total - (Number.isFinite(available) ? available : 0)) * 1024, capacityBytes: total * 1024 }
}

/** Samples CPU use over `sampleMs`; memory now; disk of the filesystem holding `storageRoot`. */
export async function hostUsage(storageRoot: string, sampleMs = 250): Promise<HostUsage> {
  const a = cpuTimes()
  await sleep(sampleMs)
  const b = cpuTimes()
  const usagePct = a && b && b.total > a.total ? Math.min(1, Math.max(0, (b.busy - a.busy) / (b.total - a.total))) : null
  const st = fs.statfsSync(storageRoot)
  return {
    cpu: { usagePct, capacityCores: os.availableParallelism() },
    memory: memoryFrom(fs.readFileSync('/proc/meminfo', 'utf8')),
    storage: { usedBytes: (st.blocks - st.bfree) * st.bsize, capacityBytes: st.blocks * st.bsize },
  }
}
