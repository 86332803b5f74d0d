import fs from 'node:fs'
import path from 'node:path'
import type { AgentConfig } from './config.ts'
import { ProcessTable } from './processes/process-table.ts'
import { CgroupManager } from './sandbox/cgroup.ts'
import { FileWorker } from './sandbox/file-worker.ts'
import { realRoots, type PathRoots } from './sandbox/paths.ts'
import type { LaunchPolicy } from './sandbox/spawn.ts'
import { WarmRuntimes } from './run/warm-runtimes.ts'

/** Everything a handler needs, built once at start-up. */
export interface AgentContext {
  config: AgentConfig
  cgroups: CgroupManager
  /** How user processes start; the host's /init sets it (see sandbox/spawn.ts). */
  launch: LaunchPolicy
  /** Every path the API names (exec cwd, run path, upload dest, download path): /workspace only. */
  workspacePaths: PathRoots
  /** Root-only: per-run wrapper dirs (traversable by the user, not writable). */
  runsDir: string
  /** Root-only: upload spool. */
  spoolDir: string
  startedAt: number
  /** The guest was booted with rds.test_root=1: exec may run as root (see ExecRequest.asRoot). */
  testRoot: boolean
  /** Does the file API's metadata operations as the user (started on first use). */
  fileWorker: FileWorker
  /** Background processes: owned here, so they outlive manager sessions and end with the VM. */
  processes: ProcessTable
  /** Deno / Node processes started ahead for run calls (see run/warm-runtimes.ts). */
  warmRuntimes: WarmRuntimes
}

export async function createContext(config: AgentConfig): Promise<AgentContext> {
  const runsDir = path.join(config.stateDir, 'runs')
  const spoolDir = config.spoolDir
  ensureRootDir(config.stateDir, 0o755)
  ensureRootDir(runsDir, 0o711)
  ensureRootDir(path.dirname(spoolDir), 0o700)
  ensureRootDir(spoolDir, 0o700)
  const ctx: AgentContext = {
    config,
    cgroups: new CgroupManager(config.cgroupRoot),
    launch: { userAslr: true },
    // base stays the public name: the lexical rule is about what the caller wrote.
    workspacePaths: { base: config.workspace, roots: await realRoots([config.workspace, config.home]) },
    runsDir,
    spoolDir,
    startedAt: Date.now(),
    testRoot: kernelArgs().includes('rds.test_root=1'),
    fileWorker: undefined as unknown as FileWorker,
    processes: new ProcessTable(),
    warmRuntimes: undefined as unknown as WarmRuntimes,
  }
  ctx.warmRuntimes = new WarmRuntimes(ctx, runsDir)
  ctx.fileWorker = new FileWorker(ctx)
  return ctx
}

/** Creates or repairs a root-owned directory; refuses anything that is not a plain directory. */
function ensureRootDir(dir: string, mode: number): void {
  fs.mkdirSync(dir, { recursive: true, mode })
  const st = fs.lstatSync(dir)
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`)
  if (st.uid !== 0 && process.getuid?.() === 0) fs.chownSync(dir, 0, 0)
  fs.chmodSync(dir, mode)
}

function kernelArgs(): string[] {
  try {
    return fs.readFileSync('/proc/cmdline', 'utf8').trim().split(/\s+/)
  } catch {
    return []
  }
}
