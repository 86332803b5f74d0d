// The VM supervisor: the one owner of live VMs in this manager. It boots, restores and
// re-attaches VMMs through the driver, holds each VM's agent session and console capture,
// watches the agent's health and the VMM's exit, and pauses, snapshots, stops and kills.
// It never writes a VM's state: it reports what happened (MachineEvent) and the services
// (services/vm-lifecycle.ts) decide what that means for the VM, under the VM's lock.
import crypto from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { GuestNetwork, Health } from '@rds/protocol'
import { AgentClient, type AgentCall } from '../agent/client.ts'
import { ConsoleCapture } from '../vmm/console-capture.ts'
import { copyTruncate } from '../logs/copy-truncate.ts'
import { CONSOLE_TAIL_BYTES, logTail, VMM_LOG_TAIL_BYTES } from '../logs/log-tail.ts'
import type { SnapshotResult, SnapshotTarget, VmHandle, VmmDriver } from '../vmm/driver.ts'
import { asVmmError, VmmError } from '../vmm/vmm-error.ts'
import type { Paths } from '../storage/paths.ts'
import { reserveRam } from '../storage/ram-admission.ts'
import { ensureRamDir, ramDirAdvice, ramDirProblem } from '../storage/ram-dir.ts'
import { bootSpecBeforeRunDir, bootSpecOf, type MachineConfig, type RestorePoint, type VmNet } from './boot-spec.ts'
import { MemoryBudget } from './memory-budget.ts'

export interface Machine {
  handle: VmHandle
  agent: AgentClient
  /** Reads the guest console into the VM's bounded console log while the process lives. */
  console: ConsoleCapture
  net: VmNet | undefined
  /** Set before an intended stop/kill so the exit watcher does not report a crash. */
  expectedExit: boolean
  /** Agent uptime at the last health check: a smaller value means the agent was restarted. */
  agentUptimeMs: number
  failedChecks: number
  /** Paused on purpose: a silent agent is expected, not an error. */
  paused: boolean
  monitor?: NodeJS.Timeout
}

/** What the supervisor saw happen to a live VM; the services turn it into state. */
export type MachineEvent =
  /** A VMM became live in this manager (boot, restore, re-attach): the peer bridge attaches here. */
  | { type: 'live'; vmId: string; handle: VmHandle }
  /** The VMM exited without being asked to (guest panic, killed process). */
  | { type: 'exited'; vmId: string; reason: string }
  /** The agent missed HEALTH_FAILURES_FOR_ERROR checks in a row. */
  | { type: 'agent-silent'; vmId: string; reason: string }
  /** The agent answers again after being silent. */
  | { type: 'agent-back'; vmId: string }
  /** The agent's uptime went down: the guest init restarted it. */
  | { type: 'agent-restarted'; vmId: string }

/**
 * QEMU runs with -no-reboot and the guest kernel with panic=-1: a clean exit means the guest
 * rebooted or powered off, which it does after a kernel panic.
 */
const GUEST_ENDED = '; the guest rebooted or powered off, as a guest kernel panic makes it do'
/** How often a running VM's agent is checked, and after how many missed checks the VM is reported silent. */
const HEALTH_INTERVAL_MS = 5000
const HEALTH_FAILURES_FOR_ERROR = 4
const DEFAULT_CONSOLE_LOG_MAX_BYTES = 4 * 1024 * 1024
const DEFAULT_VMM_LOG_MAX_BYTES = 1024 * 1024
/** How often the VMMs' own logs are measured: what a VMM writes meanwhile is the overshoot. */
const VMM_LOG_CHECK_MS = 1000

/** The agent client a machine uses; replaceable so tests can simulate agent faults that cannot be caused from outside the guest. */
export type AgentFactory = (socket: string, onConnect: (call: AgentCall) => Promise<void>) => AgentClient

export interface BootOptions {
  /** Called once the VMM process exists, before waiting for its agent: record the pid so a manager crash meanwhile cannot orphan it. */
  onProcess?: (handle: VmHandle) => Promise<void>
}

export function createSupervisor(deps: {
  driver: VmmDriver
  paths: Paths
  log: FastifyBaseLogger
  bootTimeoutMs: number
  healthIntervalMs?: number
  agentFactory?: AgentFactory
  /** AGENT_REPLY_MAX_BYTES: the agent client's cap on one reply. */
  agentReplyMaxBytes?: number
  /** CONSOLE_LOG_MAX_BYTES: disk of console.log + console.log.1 per VM. */
  consoleLogMaxBytes?: number
  /** VMM_LOG_MAX_BYTES: disk of vmm.log + vmm.log.1 per VM (kept by copy-truncate, runtime/logs/copy-truncate.ts). */
  vmmLogMaxBytes?: number
  vmmLogCheckMs?: number
  /** Memory all live VMs together may have, guests and VMMs (VM_MEMORY_BUDGET_MB); unlimited when absent. */
  memoryBudgetMb?: number
  /** VMM_UID_BASE: each VMM runs as uid/gid base + its address's low 24 bits (confinement/vmm-user.ts); as root when absent. */
  vmmUidBase?: number
  /** Whether guests randomise their user processes' address space, asked at each /init (SANDBOX_ASLR); on when absent. */
  userAslr?: () => boolean
}) {
  const { driver, paths, log } = deps
  const healthIntervalMs = deps.healthIntervalMs ?? HEALTH_INTERVAL_MS
  const agentFactory: AgentFactory = deps.agentFactory ?? ((socket, onConnect) => new AgentClient(socket, onConnect, { maxReplyBytes: deps.agentReplyMaxBytes }))
  const consoleLogMaxBytes = deps.consoleLogMaxBytes ?? DEFAULT_CONSOLE_LOG_MAX_BYTES
  const vmmLogMaxBytes = deps.vmmLogMaxBytes ?? DEFAULT_VMM_LOG_MAX_BYTES
  const live = new Map<string, Machine>()
  const memory = new MemoryBudget(deps.memoryBudgetMb ?? Number.POSITIVE_INFINITY)
  const listeners: Array<(e: MachineEvent) => void> = []

  /**
   * The VMM writes its own output file, which the manager cannot cap as it writes (the VMM runs
   * detached, see copy-truncate.ts): every live VM's file is measured on one timer and cut when
   * past half its budget. Re-attached VMs are in `live` too, so a restart leaves none uncapped.
   */
  let capping = false
  const vmmLogTimer = setInterval(() => {
    if (capping || live.size === 0) return
    capping = true
    void (async () => {
      for (const id of [...live.keys()]) {
        await copyTruncate(paths.vmmLog(id), vmmLogMaxBytes).catch((err: Error) => log.warn({ vmId: id, err: err.message }, 'could not cut vmm.log'))
      }
    })().finally(() => (capping = false))
  }, deps.vmmLogCheckMs ?? VMM_LOG_CHECK_MS)
  vmmLogTimer.unref()

  function emit(e: MachineEvent): void {
    for (const l of listeners) {
      try {
        l(e)
      } catch (err) {
        log.error({ vmId: e.vmId, event: e.type, err: (err as Error).message }, 'machine event listener failed')
      }
    }
  }

  async function removeRuntimeFiles(id: string): Promise<void> {
    // The run directory is the VMM's (its uid's): it goes whole. Names in the VM's directory are
    // where VMMs started before the upgrade that gave them a run directory kept their files.
    const before = [paths.controlSocket(id), paths.bridgeSocket(id), paths.consoleSocket(id), ...driver.runFiles].map((f) => path.join(paths.vmDir(id), path.basename(f)))
    await fsp.rm(paths.runDir(id), { recursive: true, force: true })
    for (const f of before) await fsp.rm(f, { force: true })
    // Not even an unlink through a RAM directory that is not ours.
    if (!ramDirProblem(paths.ramRoot)) await fsp.rm(paths.ramFile(id), { force: true })
  }

  /**
   * Runs on every new agent session (boot, re-attach, reconnect): the host pushes the time,
   * fresh entropy and the VM's network, so a restored or long-paused guest is told, never trusted.
   * Its reply states the agent's protocol version, which the agent client checks.
   */
  async function pushInit(call: AgentCall, network: GuestNetwork | undefined): Promise<void> {
    // userAslr only when off: an agent that predates the field has ASLR on anyway.
    const aslrOff = deps.userAslr?.() === false
    const body = { unixTimeMs: Date.now(), entropy: crypto.randomBytes(64).toString('base64'), ...(network ? { network } : {}), ...(aslrOff ? { userAslr: false } : {}) }
    await call('init', body, 15_000)
  }

  const newMachine = (id: string, handle: VmHandle, net: VmNet | undefined): Machine => {
    const capture = new ConsoleCapture(handle.channels.console, paths.consoleLog(id), consoleLogMaxBytes)
    capture.start()
    return {
      handle,
      agent: agentFactory(handle.channels.control, (call) => pushInit(call, net?.guest)),
      console: capture,
      net,
      expectedExit: false,
      agentUptimeMs: 0,
      failedChecks: 0,
      paused: false,
    }
  }

  /** Marks an exit as intended, stops monitoring and closes the agent session; resolves once the console log is written. */
  function retire(m: Machine): Promise<void> {
    m.expectedExit = true
    clearInterval(m.monitor)
    m.agent.close()
    return m.console.close()
  }

  async function readHealth(agent: AgentClient, timeoutMs = 15_000): Promise<Health> {
    return agent.call('health', undefined, timeoutMs)
  }

  /**
   * The guest init restarts a dead agent; the host notices (uptime went down). An agent that
   * stops answering is reported silent until it answers again.
   */
  async function checkHealth(id: string, m: Machine): Promise<void> {
    if (live.get(id) !== m || m.expectedExit || m.paused) return
    const heard = m.agent.bytesHeard()
    try {
      const h = await readHealth(m.agent, healthIntervalMs)
      if (h.uptimeMs < m.agentUptimeMs) {
        log.warn({ vmId: id }, 'guest agent was restarted by the guest init')
        emit({ type: 'agent-restarted', vmId: id })
      }
      m.agentUptimeMs = h.uptimeMs
      if (m.failedChecks >= HEALTH_FAILURES_FOR_ERROR && live.get(id) === m) emit({ type: 'agent-back', vmId: id })
      m.failedChecks = 0
    } catch (err) {
      // Behind a big transfer the check waits in the channel's one queue (virtio-serial) while
      // the agent keeps sending data or window updates: busy, not silent. Resetting the session
      // then would kill the transfer, as it did for 16 MiB uploads on a loaded host.
      if (m.agent.bytesHeard() > heard) return
      m.failedChecks++
      // Two silent checks in a row: the agent behind this session is likely gone (the init
      // restarts it), so reconnect; the resync reaches the new agent.
      if (m.failedChecks >= 2) m.agent.reset()
      if (m.failedChecks === HEALTH_FAILURES_FOR_ERROR && live.get(id) === m && !m.expectedExit) {
        log.warn({ vmId: id, err: (err as Error).message }, 'guest agent does not answer')
        emit({ type: 'agent-silent', vmId: id, reason: (err as Error).message })
      }
    }
  }

  function watch(id: string, m: Machine, agentUptimeMs: number): void {
    live.set(id, m)
    emit({ type: 'live', vmId: id, handle: m.handle })
    m.agentUptimeMs = agentUptimeMs
    m.monitor = setInterval(() => void checkHealth(id, m), healthIntervalMs)
    m.monitor.unref()
    void m.handle.exited.then(async (exit) => {
      clearInterval(m.monitor)
      m.agent.close()
      void m.console.close()
      // An intended exit is forgotten by the stop or kill that asked for it.
      if (live.get(id) !== m || m.expectedExit) return
      const reason = `VM process exited unexpectedly (${exit.signal ? `signal ${exit.signal}` : `code ${exit.code ?? 'unknown'}${exit.code === 0 ? GUEST_ENDED : ''}`})`
      log.warn({ vmId: id, exit }, reason)
      await forget(id)
      emit({ type: 'exited', vmId: id, reason })
    })
  }

  /**
   * Starts the VMM (a kernel boot, or a restore from `from`) and waits for its agent. On
   * failure nothing of the attempt is left running; the error is a VmmError.
   */
  async function start(vm: MachineConfig, from: RestorePoint | undefined, opts: BootOptions): Promise<{ bootMs: number }> {
    const started = Date.now()
    const failKind = from ? 'restore_failed' : 'start_failed'
    // Checked on every boot, not only at start: the directory is made lazily, and until then
    // anyone could make it.
    const ramProblem = ensureRamDir(paths.ramRoot)
    if (ramProblem) throw new VmmError('ram_dir_unsafe', ramDirAdvice(ramProblem))
    await removeRuntimeFiles(vm.id)
    const spec = bootSpecOf(paths, vm, from, deps.vmmUidBase)
    // Before the RAM file: a VM over the budget takes no tmpfs room either.
    memory.admit(vm.id, vm.memMb, driver.vmmOverheadMb())
    let handle: VmHandle
    try {
      const ramBytes = from?.ramBytes ?? driver.bootRamBytes(vm.memMb)
      if (spec.memory.shared) reserveRam(paths.ramRoot, spec.memory.file, ramBytes)
      handle = from ? await driver.restore(spec, { stateFile: from.stateFile, withoutRam: from.memoryInFile, ramBytes }) : await driver.boot(spec)
    } catch (err) {
      await forget(vm.id)
      throw asVmmError(err, failKind)
    }
    const m = newMachine(vm.id, handle, vm.net)
    try {
      await opts.onProcess?.(handle)
      // A session exists only once the agent answered the init: that is the readiness check.
      // Its uptime comes with the first health check (one guest round trip less per create).
      await m.agent.waitReady(deps.bootTimeoutMs, () => handle.isAlive()).catch(async (err: unknown) => Promise.reject(asVmmError(await withVmmExit(err, handle, spec.vmmLog), failKind)))
      watch(vm.id, m, 0)
      return { bootMs: Date.now() - started }
    } catch (err) {
      await retire(m)
      // The VM and its console log go with the failed create: the console's end is often the
      // only account of why a live guest did not answer, so it goes to the manager log first.
      if (handle.isAlive()) {
        const said = logTail(paths.consoleLog(vm.id), CONSOLE_TAIL_BYTES)
        if (said) log.warn({ vmId: vm.id, console: said }, 'the VM did not become ready; the end of its console')
      }
      await handle.kill(500)
      await forget(vm.id)
      throw err
    }
  }

  /** The VM has no VMM in this manager any more: its entry, its memory and its run files go. */
  async function forget(id: string): Promise<void> {
    live.delete(id)
    memory.release(id)
    await removeRuntimeFiles(id)
  }

  function mustBeLive(id: string): Machine {
    const m = live.get(id)
    if (!m) throw new VmmError('not_running', `VM ${id} has no running VMM`)
    return m
  }

  return {
    get: (id: string) => live.get(id),
    /** VM memory admitted now (guests and their VMMs), the budget, and what a VMM takes beside its guest (MiB). */
    memory: () => ({ usedMb: memory.usedMb, budgetMb: memory.budgetMb, vmmOverheadMb: driver.vmmOverheadMb() }),
    ids: () => [...live.keys()],
    describe: () => driver.describe(),
    /** The guest RAM a VM of memMb MiB boots with (VmmDriver.bootRamBytes). */
    bootRamBytes: (memMb: number) => driver.bootRamBytes(memMb),

    /** Listens to what happens to live VMs (see MachineEvent). */
    subscribe(listener: (e: MachineEvent) => void): void {
      listeners.push(listener)
    },

    /** Boots the VM's kernel from its disks and waits for its agent. */
    boot: (vm: MachineConfig, opts: BootOptions = {}) => start(vm, undefined, opts),

    /** Restores the VM from a snapshot's saved state (a clone, a seed resume) and waits for its agent. */
    restore: (vm: MachineConfig, from: RestorePoint, opts: BootOptions = {}) => start(vm, from, opts),

    /** Memory, devices and (through target.whilePaused) disks of a running or paused VM. */
    async snapshot(id: string, target: SnapshotTarget): Promise<SnapshotResult> {
      return mustBeLive(id).handle.snapshot(target)
    },

    /** Stops the guest's CPUs (no host CPU used); memory and agent session stay. */
    async pause(id: string): Promise<void> {
      const m = mustBeLive(id)
      m.paused = true
      try {
        await m.handle.pause()
      } catch (err) {
        m.paused = false
        throw err
      }
    },

    async resume(id: string): Promise<void> {
      const m = mustBeLive(id)
      await m.handle.resume()
      m.paused = false
      m.failedChecks = 0
      // The guest clock stood still while paused.
      await pushInit(m.agent.call, m.net?.guest).catch((err: Error) => {
        log.warn({ vmId: id, err: err.message }, 'could not set the guest clock after resume')
      })
    },

    /** Clean stop: the guest init syncs and powers off; a VMM that does not exit in time is killed. */
    async stop(id: string, timeoutMs: number): Promise<void> {
      const m = live.get(id)
      if (!m) return
      m.expectedExit = true
      clearInterval(m.monitor)
      await m.agent.call('shutdown', undefined, 3000).catch(() => undefined)
      const exited = await Promise.race([m.handle.exited.then(() => true), sleep(timeoutMs).then(() => false)])
      if (!exited) {
        log.warn({ vmId: id }, 'guest did not power off in time; killing the VMM')
        await m.handle.kill(1000)
      }
      m.agent.close()
      void m.console.close()
      await forget(id)
    },

    /** Immediate kill (delete, failed operations): no guest cooperation needed. */
    async kill(id: string): Promise<void> {
      const m = live.get(id)
      if (!m) return
      void retire(m)
      await m.handle.kill(500)
      await forget(id)
    },

    /** After a manager restart: take over a VMM that is still running, or report that it is gone. */
    async reattach(vm: MachineConfig, saved: { pid: number | null; startTime: string | null; paused: boolean }): Promise<boolean> {
      if (!saved.pid || !saved.startTime) return false
      const current = bootSpecOf(paths, vm, undefined, deps.vmmUidBase)
      const spec = fs.existsSync(paths.runDir(vm.id)) ? current : bootSpecBeforeRunDir(paths, current)
      const handle = await driver.reattach({ vmId: vm.id, pid: saved.pid, startTime: saved.startTime, spec })
      if (!handle) return false
      const m = newMachine(vm.id, handle, vm.net)
      if (saved.paused) {
        // Its agent cannot answer until resumed; the session is made on first use after that.
        m.paused = true
        memory.hold(vm.id, vm.memMb, driver.vmmOverheadMb())
        watch(vm.id, m, 0)
        return true
      }
      let health: Health
      try {
        await m.agent.waitReady(15_000, () => handle.isAlive())
        health = await readHealth(m.agent)
      } catch (err) {
        log.warn({ vmId: vm.id, err: (err as Error).message }, 'running VMM found but its agent does not answer; killing it')
        void retire(m)
        await handle.kill(500)
        return false
      }
      memory.hold(vm.id, vm.memMb, driver.vmmOverheadMb())
      watch(vm.id, m, health.uptimeMs)
      return true
    },

    /** Kills VMM processes of this instance that no live VM owns (startup sweep); returns their pids. */
    reapStrays: (): number[] => driver.sweep((vmId) => live.has(vmId)),

    /** Manager shutdown: VMs keep running (they are detached); only our sessions close. */
    detachAll(): void {
      clearInterval(vmmLogTimer)
      for (const m of live.values()) void retire(m)
      live.clear()
      memory.clear()
    },

    removeRuntimeFiles,
  }
}
export type Supervisor = ReturnType<typeof createSupervisor>
export type { MachineConfig, RestorePoint, VmNet } from './boot-spec.ts'

/**
 * An agent that never answered because its VMM died: how the VMM ended (SIGKILL is often its
 * cgroup's memory limit) and the last thing it wrote, which is QEMU's reason when it has one.
 */
async function withVmmExit(err: unknown, handle: VmHandle, vmmLog: string): Promise<unknown> {
  if (handle.isAlive()) return err
  const exit = await Promise.race([handle.exited, sleep(1000).then(() => undefined)])
  const status = exit?.code ?? exit?.signal
  const how = status == null ? '' : ` (exit ${status}${exit?.code === 0 ? GUEST_ENDED : ''})`
  const said = logTail(vmmLog, VMM_LOG_TAIL_BYTES)
  return new Error(`${(err as Error).message}${how}${said ? `: ${said}` : ''}`, { cause: err })
}
