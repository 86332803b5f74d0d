// The QEMU driver. VMM processes run detached (own session, output to a file, pidfile and
// QMP socket in the VM's directory) so that a manager restart does not take them down; a
// restarted manager re-attaches through `reattach` or kills them in the startup sweep.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import path from 'node:path'
import type { BootSpec, SavedState, SavedVmm, SnapshotResult, SnapshotTarget, VmExit, VmHandle, VmmDriver } from '../driver.ts'
import { asVmmError, VmmError } from '../vmm-error.ts'
import { QmpClient } from './qmp.ts'
import { loadState, saveState, type LivePrecopy, type MigrationSocket } from './migration.ts'
import { copySparse } from '../../storage/copy.ts'
import { hostTscKhz, markedVmId, qemuArgs, type QemuLaunch } from './args.ts'
import { bootRamBytes, isRamSizeOf, liveSaveIsExact } from './guest-ram.ts'
import { isAlive, listPids, processCmdline, processStartTime } from '../../process/proc.ts'
import { vmmLimits, type VmmCgroups } from '../confinement/cgroups.ts'
import { JAIL_RUN_DIR, jailVmm } from '../confinement/jail.ts'
import { logTail, VMM_LOG_TAIL_BYTES } from '../../logs/log-tail.ts'

export interface QemuDriverOptions {
  qemuBin: string
  /** Read at every boot: the accelerator is decided after the services exist (the probe needs an image). */
  accel: () => 'kvm' | 'tcg'
  /** Distinguishes this manager's VMs from another manager's on the same host. */
  instance: string
  /** Network namespace (path under /run/netns) that VMs with a NIC run in: their TAPs live there. */
  netnsPath?: string
  /** Appended to every guest's kernel command line. */
  kernelArgs?: string[]
  /** TCG's translation cache per VMM in MiB (QEMU_TB_SIZE_MB); absent or 0: QEMU's default. */
  tbSizeMb?: number
  /** Each VMM runs in a cgroup of its own with limits from the VM's shape (absent: the KVM probe's throwaway VMM). */
  cgroups?: VmmCgroups
  /**
   * How a running guest whose RAM is not in a shared file (a clone) is saved: 'live' streams its
   * RAM while it runs and pauses it for the last pages only; 'stop' pauses it for the whole
   * stream. 'auto' (default): live wherever QEMU tracks every guest write during the save —
   * always under KVM; under TCG only for a guest whose RAM size avoids QEMU 7.2's faulty dirty
   * sync (guest-ram.ts: every VM booted by this version), others are stopped.
   */
  snapshotMode?: SnapshotMode | 'auto'
}

export type SnapshotMode = 'live' | 'stop'

/** The mode a running clone with this much RAM is saved in (see QemuDriverOptions.snapshotMode). */
export function resolveSnapshotMode(setting: SnapshotMode | 'auto' | undefined, accel: 'kvm' | 'tcg', ramBytes: number): SnapshotMode {
  if (setting === 'live' || setting === 'stop') return setting
  return liveSaveIsExact(ramBytes, accel) ? 'live' : 'stop'
}

/**
 * Joins the cgroups given before `--` and execs the rest: the pid written is the VMM's own, so it
 * is confined before it runs. 125 (a shell convention for "the wrapper failed") if joining fails.
 */
const JOIN_CGROUP = 'for f; do shift; [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; done; exec "$@"'

const EXIT_POLL_MS = 250
/** Saving or loading state moves at most a few hundred MB through a pipe. */
const STATE_TIMEOUT_MS = 120_000
/** Device state beside guest RAM in a saved stream (84 KiB measured for a 384 MiB VM), with a wide margin; the rest of the cap is the guest's RAM. */
export const STATE_MARGIN_BYTES = 64 * 1024 * 1024
const stateCapOf = (ramBytes: number) => ramBytes + STATE_MARGIN_BYTES
/**
 * A live stream re-sends pages the guest dirtied while it ran. The live phase may send one guest
 * RAM's worth; then the guest is stopped and at most its whole RAM follows: so twice the RAM + margin.
 */
const liveStateCapOf = (ramBytes: number) => 2 * ramBytes + STATE_MARGIN_BYTES
/** The pause QEMU aims for when it stops a live guest for its last dirty pages and device state. */
const LIVE_DOWNTIME_MS = 50
/** A guest that keeps dirtying RAM faster than it is sent: the allowed pause grows after this long, and it is stopped after twice as long (migration.ts). */
const LIVE_BUDGET_MS = 3_000
const livePrecopyOf = (ramBytes: number): LivePrecopy => ({ downtimeMs: LIVE_DOWNTIME_MS, budgetMs: LIVE_BUDGET_MS, budgetBytes: ramBytes })

/**
 * What a QEMU takes beside its guest's RAM, as the memory budget counts it: its code, heap and
 * device state (~24 MB measured in an idle clone: heap and thread arenas ~19,
 * binary and libraries ~5; more while busy), and under TCG its translation cache, which a busy guest
 * fills up to its bound (QEMU_TB_SIZE_MB; QEMU 7.2's own default is 1 GiB). The cgroup's limit
 * (confinement/cgroups.ts) is a ceiling above this, not an estimate.
 */
const QEMU_BASE_MIB = 64
const QEMU_DEFAULT_TB_MIB = 1024
export const qemuOverheadMb = (accel: 'kvm' | 'tcg', tbSizeMb: number | undefined) => QEMU_BASE_MIB + (accel === 'tcg' ? tbSizeMb || QEMU_DEFAULT_TB_MIB : 0)

/** QEMU's own files in the VM's run directory (names kept stable: running VMs are re-attached across upgrades). */
const QMP_SOCKET = 'qmp.sock'
const PID_FILE = 'vmm.pid'
/** The migration stream's socket while a state is saved or loaded (as short as qmp.sock: sun_path is 108 bytes). */
const MIGRATION_SOCKET = 'mig.sock'
/** The migration socket where the manager binds or connects, and as the VMM names it (a confined one sees its run directory at JAIL_RUN_DIR). */
const migrationSocketOf = (spec: BootSpec): MigrationSocket => ({
  path: path.join(spec.workDir, MIGRATION_SOCKET),
  inVmm: spec.confinement ? path.posix.join(JAIL_RUN_DIR, MIGRATION_SOCKET) : path.join(spec.workDir, MIGRATION_SOCKET),
  ...(spec.confinement ? { owner: { uid: spec.confinement.uid, gid: spec.confinement.gid } } : {}),
})
const launchOf = (spec: BootSpec, ramBytes: number, incoming?: SavedState): QemuLaunch => ({
  ...spec,
  ramBytes,
  qmpSocket: path.join(spec.workDir, QMP_SOCKET),
  pidFile: path.join(spec.workDir, PID_FILE),
  ...(incoming ? { incoming } : {}),
})

class QemuHandle implements VmHandle {
  readonly pid: number
  readonly startTime: string
  readonly channels: { control: string; bridge: string; console: string }
  readonly exited: Promise<VmExit>
  private qmp: QmpClient | undefined
  private readonly qmpSocket: string
  private readonly migrationSocket: MigrationSocket
  private readonly memory: BootSpec['memory']
  private readonly memMb: number
  private readonly snapshotModeFor: (ramBytes: number) => SnapshotMode
  private exitInfo: VmExit | undefined

  /** `released` runs once the process is gone, before `exited` resolves (the VMM's cgroup goes there). */
  constructor(pid: number, startTime: string, spec: BootSpec, snapshotModeFor: (ramBytes: number) => SnapshotMode, childExit?: Promise<VmExit>, released?: () => Promise<void>) {
    this.pid = pid
    this.startTime = startTime
    this.channels = { control: spec.controlSocket, bridge: spec.bridgeSocket, console: spec.consoleSocket }
    this.qmpSocket = path.join(spec.workDir, QMP_SOCKET)
    this.migrationSocket = migrationSocketOf(spec)
    this.memMb = spec.memMb
    this.snapshotModeFor = snapshotModeFor
    this.memory = spec.memory
    // A child reports its own exit, with its status; a re-attached process is not our child, so
    // poll /proc (no status). Not both: a poll can see the child's zombie before Node reaps it, and
    // the exit status that explains a failed boot would be lost.
    const polled = (): Promise<VmExit> =>
      new Promise<VmExit>((resolve) => {
        const t = setInterval(() => {
          if (!this.isAlive()) {
            clearInterval(t)
            resolve({ code: null, signal: null })
          }
        }, EXIT_POLL_MS)
        t.unref()
      })
    this.exited = (childExit ?? polled()).then(async (e) => {
      this.exitInfo = e
      this.qmp?.close()
      // A new VMM of the same VM (a restart) may follow as soon as this one is reported gone.
      await released?.().catch(() => undefined)
      return e
    })
  }

  isAlive(): boolean {
    if (this.exitInfo) return false
    return isAlive(this.pid) && processStartTime(this.pid) === this.startTime
  }

  async qmpClient(): Promise<QmpClient> {
    if (!this.qmp || this.qmp.isClosed) this.qmp = await QmpClient.connect(this.qmpSocket)
    return this.qmp
  }

  async snapshot(target: SnapshotTarget): Promise<SnapshotResult> {
    return this.snapshotOrThrow(target).catch((err: unknown) => Promise.reject(asVmmError(err, 'snapshot_failed')))
  }

  private async snapshotOrThrow(target: SnapshotTarget): Promise<SnapshotResult> {
    const qmp = await this.qmpClient()
    const { status } = (await qmp.execute('query-status')) as { status: string }
    const wasRunning = status === 'running'
    // Asked, not taken from the spec: a re-attached clone's spec does not know its snapshot's size.
    const ramBytes = ((await qmp.execute('query-memory-size-summary')) as { 'base-memory': number })['base-memory']
    if (!isRamSizeOf(this.memMb, ramBytes)) throw new VmmError('snapshot_failed', `the VMM reports ${ramBytes} bytes of guest RAM for a VM of ${this.memMb} MiB`)
    // A shared memory file holds the RAM as it is now: copy it while paused, and leave RAM out of
    // the stream (~80 kB, so no live phase is needed). Private RAM must be streamed: live if running.
    const memoryInFile = this.memory.shared
    const live = wasRunning && !memoryInFile && this.snapshotModeFor(ramBytes) === 'live'
    const t0 = Date.now()
    if (wasRunning && !live) await qmp.execute('stop')
    try {
      const saved = await saveState(qmp, this.migrationSocket, target.stateFile, {
        withoutRam: memoryInFile,
        timeoutMs: STATE_TIMEOUT_MS,
        maxBytes: live ? liveStateCapOf(ramBytes) : stateCapOf(ramBytes),
        ...(live ? { live: livePrecopyOf(ramBytes) } : {}),
      })
      if (live) {
        // The disk copy must be of the same instant as the RAM: QEMU stopped the guest (and
        // flushed its disks) to complete the stream; a guest still running is not that instant.
        const after = (await qmp.execute('query-status')) as { status: string }
        if (after.status === 'running') throw new Error('the guest was still running after its state was saved')
      }
      if (memoryInFile) await copySparse(this.memory.file, target.memoryFile)
      await target.whilePaused()
      if (wasRunning) await qmp.execute('cont')
      // Live, the guest ran until QEMU stopped it; without a STOP event, count the whole save.
      const pausedSince = live ? (saved.stoppedAt ?? t0) : t0
      return { pauseMs: Math.max(0, Math.round(Date.now() - pausedSince)), memoryInFile, ramBytes }
    } catch (err) {
      // `cont` also re-activates the disks a finished migration handed over.
      if (wasRunning) await qmp.execute('cont').catch(() => undefined)
      throw err
    }
  }

  async pause(): Promise<void> {
    await this.control('stop')
  }

  async resume(): Promise<void> {
    await this.control('cont')
  }

  private async control(command: string): Promise<void> {
    try {
      await (await this.qmpClient()).execute(command)
    } catch (err) {
      throw new VmmError('control_failed', `VMM did not ${command === 'stop' ? 'pause' : 'resume'}: ${(err as Error).message}`, {}, { cause: err })
    }
  }

  async kill(graceMs = 2000): Promise<void> {
    if (!this.isAlive()) return
    try {
      await Promise.race([(await this.qmpClient()).execute('quit'), sleep(graceMs)])
    } catch {
      // QMP may already be gone; fall through to the signal.
    }
    const gone = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)])
    if (!gone && this.isAlive()) {
      try {
        process.kill(this.pid, 'SIGKILL')
      } catch {
        // already gone
      }
      await this.exited
    }
  }
}

export function createQemuDriver(o: QemuDriverOptions): VmmDriver {
  const tscKhz = hostTscKhz(fs.readFileSync('/proc/cpuinfo', 'utf8'))
  const release = (vmId: string) => (o.cgroups ? () => o.cgroups!.remove(vmId) : undefined)
  const snapshotModeFor = (ramBytes: number) => resolveSnapshotMode(o.snapshotMode, o.accel(), ramBytes)

  /** Spawns QEMU detached and waits until it serves QMP (an early exit is a configuration error). */
  async function start(spec: QemuLaunch): Promise<{ handle: QemuHandle }> {
    // A confined VMM's run directory is made for its uid (confinement/jail.ts), anyone else's here.
    if (!spec.confinement) fs.mkdirSync(spec.workDir, { recursive: true, mode: 0o700 })
    const logFd = fs.openSync(spec.vmmLog, 'a', 0o600)
    let child
    try {
      const accel = o.accel()
      // Confined: QEMU sees its own root (paths inside it), as the VM's uid (confinement/jail.ts).
      const jail = spec.confinement ? jailVmm(spec, spec.confinement, accel) : undefined
      const seen: QemuLaunch = jail ? { ...spec, ...jail.spec, qmpSocket: jail.inside(spec.qmpSocket), pidFile: jail.inside(spec.pidFile) } : spec
      const args = qemuArgs(seen, { accel, instance: o.instance, tscKhz, kernelArgs: o.kernelArgs, tbSizeMb: o.tbSizeMb })
      const qemu = jail ? jail.argv([o.qemuBin, ...args]) : [o.qemuBin, ...args]
      // nsenter, unshare, chroot and setpriv exec in place: the pid and the -name marker stay QEMU's own.
      const vmm = spec.net && o.netnsPath ? ['nsenter', `--net=${o.netnsPath}`, '--', ...qemu] : qemu
      const procs = o.cgroups?.prepare(spec.vmId, vmmLimits(spec, accel)) ?? []
      const [cmd, ...argv] = procs.length ? ['/bin/sh', '-c', JOIN_CGROUP, 'rds-join-cgroup', ...procs, '--', ...vmm] : vmm
      child = spawn(cmd!, argv, { detached: true, stdio: ['ignore', logFd, logFd] })
    } finally {
      fs.closeSync(logFd)
    }
    const childExit = new Promise<VmExit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }))
      child.once('error', () => resolve({ code: null, signal: null }))
    })
    child.unref()
    const pid = child.pid
    if (pid === undefined) {
      const e = await childExit
      throw new VmmError('start_failed', `could not start ${o.qemuBin} (exit ${e.code ?? e.signal})`)
    }
    // /proc/<pid>/stat exists as soon as spawn returns a pid.
    const startTime = processStartTime(pid) ?? '0'
    const handle = new QemuHandle(pid, startTime, spec, snapshotModeFor, childExit, release(spec.vmId))
    // QEMU validates its arguments before creating sockets.
    const early = await Promise.race([handle.exited, waitForFile(spec.qmpSocket, 10_000).then(() => undefined)]).catch(async (err: Error) => {
      await handle.kill(500)
      throw new VmmError('start_failed', err.message)
    })
    if (early) throw exitedDuringStart(spec, early)
    return { handle }
  }

  return {
    describe: () => ({ vmm: 'qemu', accel: o.accel() }),
    runFiles: [QMP_SOCKET, PID_FILE, MIGRATION_SOCKET],
    bootRamBytes: (memMb) => bootRamBytes(memMb, o.accel()),
    vmmOverheadMb: () => qemuOverheadMb(o.accel(), o.tbSizeMb),

    async boot(spec) {
      return (await start(launchOf(spec, bootRamBytes(spec.memMb, o.accel())))).handle
    },

    async restore(spec, state) {
      const launch = launchOf(spec, state.ramBytes, state)
      let started: { handle: QemuHandle } | undefined
      try {
        started = await start(launch)
        const { handle } = started
        const qmp = await handle.qmpClient()
        await Promise.race([loadState(qmp, migrationSocketOf(spec), state.stateFile, state.withoutRam, STATE_TIMEOUT_MS), handle.exited.then((e) => Promise.reject(exitedDuringStart(launch, e)))])
        await qmp.execute('cont')
        return handle
      } catch (err) {
        await started?.handle.kill(500)
        throw new VmmError('restore_failed', (err as Error).message, {}, { cause: err })
      }
    },

    async reattach(saved: SavedVmm) {
      const same = markedVmId(processCmdline(saved.pid), o.instance) === saved.vmId && processStartTime(saved.pid) === saved.startTime
      if (!same || !isAlive(saved.pid)) return undefined
      return new QemuHandle(saved.pid, saved.startTime, saved.spec, snapshotModeFor, undefined, release(saved.vmId))
    },

    sweep(keep) {
      const killed: number[] = []
      for (const pid of listPids()) {
        const vmId = markedVmId(processCmdline(pid), o.instance)
        if (vmId === undefined || !isAlive(pid) || keep(vmId)) continue
        try {
          process.kill(pid, 'SIGKILL')
          killed.push(pid)
        } catch {
          // gone meanwhile
        }
      }
      // Their cgroups go once the killed are gone (and those of VMMs that died while no manager ran).
      void o.cgroups?.sweep(keep).catch(() => undefined)
      return killed
    },
  }
}

function exitedDuringStart(spec: BootSpec, e: VmExit): VmmError {
  const log = logTail(spec.vmmLog, VMM_LOG_TAIL_BYTES)
  return new VmmError('start_failed', `VMM exited during start (code ${e.code ?? e.signal})${log ? `: ${log}` : ''}`)
}

async function waitForFile(file: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!fs.existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${file}`)
    await sleep(10)
  }
}
