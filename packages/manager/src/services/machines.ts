// The live side of VMs: which VMM process and agent session belong to which VM, how a VM
// is booted and stopped, and what happens when its process dies on its own. The VM
// service (vms.ts) decides *when*; this module knows *how*.
import crypto from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { GuestNetwork, Health } from '@rds/protocol'
import { AgentClient, type AgentCall } from '../runtime/agent/client.ts'
import { ConsoleCapture } from '../runtime/vmm/console-capture.ts'
import type { BootSpec, SnapshotResult, SnapshotTarget, VmHandle, VmmDriver } from '../runtime/vmm/driver.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import { ensureRamDir, ramDirAdvice, ramDirProblem } from '../runtime/storage/ram-dir.ts'
import { Errors } from '../errors.ts'
import type { BootFiles } from './images.ts'
import type { BootNet } from './network.ts'
import type { VmRecord, VmsRepo } from '../store/vms-repo.ts'

export interface Machine {
  handle: VmHandle
  agent: AgentClient
  /** Reads the guest console into the VM's bounded console log while the process lives. */
  console: ConsoleCapture
  net: BootNet | undefined
  /** Set before an intended stop/kill so the exit watcher does not report a crash. */
  expectedExit: boolean
  /** Agent uptime at the last health check: a smaller value means the agent was restarted. */
  agentUptimeMs: number
  failedChecks: number
  /** Paused on purpose: a silent agent is expected, not an error. */
  paused: boolean
  monitor?: NodeJS.Timeout
}

/** A saved state to resume from instead of booting the kernel. */
export interface RestorePoint {
  stateFile: string
  memoryFile: string
  /** RAM is in memoryFile (mapped copy-on-write); otherwise it is inside the state stream. */
  memoryInFile: boolean
}

/** How often a running VM's agent is checked, and after how many missed checks the VM is ERROR. */
const HEALTH_INTERVAL_MS = 5000
const HEALTH_FAILURES_FOR_ERROR = 4

/** The agent client a machine uses; replaceable so tests can simulate agent faults that cannot be caused from outside the guest. */
export type AgentFactory = (socket: string, onConnect: (call: AgentCall) => Promise<void>) => AgentClient

const DEFAULT_CONSOLE_LOG_MAX_BYTES = 4 * 1024 * 1024

export function createMachines(deps: {
  driver: VmmDriver
  paths: Paths
  repo: VmsRepo
  log: FastifyBaseLogger
  bootTimeoutMs: number
  healthIntervalMs?: number
  agentFactory?: AgentFactory
  /** AGENT_REPLY_MAX_BYTES: the agent client's cap on one reply. */
  agentReplyMaxBytes?: number
  /** CONSOLE_LOG_MAX_BYTES: disk of console.log + console.log.1 per VM. */
  consoleLogMaxBytes?: number
  /** Called whenever a VM's process becomes live in this manager (boot, re-attach): the peer bridge attaches here. */
  onLive?: (vmId: string, handle: VmHandle) => void
}) {
  const { driver, paths, repo, log } = deps
  const healthIntervalMs = deps.healthIntervalMs ?? HEALTH_INTERVAL_MS
  const agentFactory: AgentFactory = deps.agentFactory ?? ((socket, onConnect) => new AgentClient(socket, onConnect, { maxReplyBytes: deps.agentReplyMaxBytes }))
  const consoleLogMaxBytes = deps.consoleLogMaxBytes ?? DEFAULT_CONSOLE_LOG_MAX_BYTES
  const live = new Map<string, Machine>()

  const specFor = (vm: Pick<VmRecord, 'id' | 'cpu' | 'memMb' | 'memorySnapshotId'>, files: BootFiles, net: BootNet | undefined, from?: RestorePoint): BootSpec => ({
    vmId: vm.id,
    cpu: vm.cpu,
    memMb: vm.memMb,
    kernel: files.kernel,
    initrd: files.initrd,
    rootfs: files.rootfs,
    overlay: paths.overlay(vm.id),
    controlSocket: paths.controlSocket(vm.id),
    bridgeSocket: paths.bridgeSocket(vm.id),
    qmpSocket: paths.qmpSocket(vm.id),
    pidFile: paths.pidFile(vm.id),
    consoleSocket: paths.consoleSocket(vm.id),
    vmmLog: paths.vmmLog(vm.id),
    ...(net ? { net: { tap: net.tap, mac: net.mac } } : {}),
    memory: memoryOf(vm, from),
    ...(from ? { incoming: { stateFile: from.stateFile, withoutRam: from.memoryInFile } } : {}),
  })

  /** A clone maps its snapshot's memory file privately; everything else has its own RAM file. */
  function memoryOf(vm: Pick<VmRecord, 'id' | 'memorySnapshotId'>, from: RestorePoint | undefined): BootSpec['memory'] {
    if (from?.memoryInFile) return { file: from.memoryFile, shared: false }
    if (!from && vm.memorySnapshotId) return { file: paths.snapshotMemory(vm.memorySnapshotId), shared: false }
    return { file: paths.ramFile(vm.id), shared: true }
  }

  /**
   * Creates a booted VM's RAM file at its full size, if the RAM directory can hold it next to
   * the others: a guest touching a page of a full tmpfs would kill its QEMU (SIGBUS), so the
   * sum of all RAM files never exceeds the filesystem. Synchronous, so two creates cannot both
   * take the last room.
   */
  function reserveRam(file: string, memMb: number): void {
    const st = fs.statfsSync(paths.ramRoot)
    const capacity = st.blocks * st.bsize
    let reserved = 0
    for (const f of fs.readdirSync(paths.ramRoot)) reserved += fs.statSync(`${paths.ramRoot}/${f}`).size
    const need = memMb * 1024 * 1024
    if (reserved + need > capacity) throw Errors.ramExhausted(paths.ramRoot, Math.floor((capacity - reserved) / 1024 / 1024), memMb)
    const fd = fs.openSync(file, 'w', 0o600)
    try {
      fs.ftruncateSync(fd, need)
    } finally {
      fs.closeSync(fd)
    }
  }

  async function removeRuntimeFiles(id: string): Promise<void> {
    for (const f of [paths.controlSocket(id), paths.bridgeSocket(id), paths.consoleSocket(id), paths.qmpSocket(id), paths.pidFile(id)]) await fsp.rm(f, { force: true })
    // Not even an unlink through a RAM directory that is not ours.
    if (!ramDirProblem(paths.ramRoot)) await fsp.rm(paths.ramFile(id), { force: true })
  }

  /**
   * Runs on every new agent session (boot, re-attach, reconnect): the host pushes the time,
   * fresh entropy and the VM's network, so a restored or long-paused guest is told, never trusted.
   * Its reply states the agent's protocol version, which the agent client checks.
   */
  async function pushInit(call: AgentCall, network: GuestNetwork | undefined): Promise<void> {
    const body = { unixTimeMs: Date.now(), entropy: crypto.randomBytes(64).toString('base64'), ...(network ? { network } : {}) }
    await call('init', body, 15_000)
  }

  const newMachine = (id: string, handle: VmHandle, net: BootNet | undefined): Machine => {
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

  /** Marks an exit as intended, stops monitoring and closes the agent session. */
  function retire(m: Machine): void {
    m.expectedExit = true
    clearInterval(m.monitor)
    m.agent.close()
    void m.console.close()
  }

  async function readHealth(agent: AgentClient, timeoutMs = 15_000): Promise<Health> {
    return agent.call('health', undefined, timeoutMs)
  }

  /**
   * The guest init restarts a dead agent; the host notices (uptime went down) and says so in
   * the VM's lastError. An agent that stops answering altogether turns the VM to ERROR until
   * it answers again.
   */
  async function checkHealth(id: string, m: Machine): Promise<void> {
    if (live.get(id) !== m || m.expectedExit || m.paused) return
    try {
      const h = await readHealth(m.agent, healthIntervalMs)
      if (h.uptimeMs < m.agentUptimeMs) {
        log.warn({ vmId: id }, 'guest agent was restarted by the guest init')
        await repo.update(id, { lastError: `guest agent restarted at ${new Date().toISOString()} (see the console log)` })
      }
      m.agentUptimeMs = h.uptimeMs
      if (m.failedChecks >= HEALTH_FAILURES_FOR_ERROR && live.get(id) === m) {
        await repo.update(id, { state: 'RUNNING', lastError: `guest agent answers again since ${new Date().toISOString()}` })
      }
      m.failedChecks = 0
    } catch (err) {
      m.failedChecks++
      // Two silent checks in a row: the agent behind this session is likely gone (the init
      // restarts it), so reconnect; the resync reaches the new agent.
      if (m.failedChecks >= 2) m.agent.reset()
      if (m.failedChecks === HEALTH_FAILURES_FOR_ERROR && live.get(id) === m && !m.expectedExit) {
        log.warn({ vmId: id, err: (err as Error).message }, 'guest agent does not answer')
        await repo.update(id, { state: 'ERROR', lastError: `guest agent not responding: ${(err as Error).message}` })
      }
    }
  }

  function watch(id: string, m: Machine, agentUptimeMs: number): void {
    deps.onLive?.(id, m.handle)
    m.agentUptimeMs = agentUptimeMs
    m.monitor = setInterval(() => void checkHealth(id, m), healthIntervalMs)
    m.monitor.unref()
    void m.handle.exited.then(async (exit) => {
      clearInterval(m.monitor)
      m.agent.close()
      void m.console.close()
      if (live.get(id) !== m) return
      live.delete(id)
      if (m.expectedExit) return
      const reason = `VM process exited unexpectedly (${exit.signal ? `signal ${exit.signal}` : `code ${exit.code ?? 'unknown'}`})`
      log.warn({ vmId: id, exit }, reason)
      await removeRuntimeFiles(id)
      await repo.update(id, { state: 'ERROR', lastError: reason, vmmPid: null, vmmStartTime: null, memorySnapshotId: null }).catch(() => {})
    })
  }

  return {
    get: (id: string) => live.get(id),
    ids: () => [...live.keys()],

    /**
     * Boots the VM's VMM (or resumes it from a saved state) and waits for its agent. On failure
     * nothing of the attempt is left running.
     */
    async boot(vm: VmRecord, files: BootFiles, net?: BootNet, from?: RestorePoint): Promise<{ bootMs: number }> {
      const started = Date.now()
      // Checked on every boot, not only at start: the directory is made lazily, and until then
      // anyone could make it.
      const ramProblem = ensureRamDir(paths.ramRoot)
      if (ramProblem) throw Errors.ramDirUnsafe(ramDirAdvice(ramProblem))
      await removeRuntimeFiles(vm.id)
      const spec = specFor(vm, files, net, from)
      if (spec.memory.shared) reserveRam(spec.memory.file, vm.memMb)
      let handle: VmHandle
      try {
        handle = await driver.boot(spec)
      } catch (err) {
        await removeRuntimeFiles(vm.id)
        throw err
      }
      const m = newMachine(vm.id, handle, net)
      const { agent } = m
      try {
        await repo.update(vm.id, { state: 'STARTING', vmmPid: handle.pid, vmmStartTime: handle.startTime })
        // A session exists only once the agent answered the init: that is the readiness check.
        // Its uptime comes with the first health check (one guest round trip less per create).
        await agent.waitReady(deps.bootTimeoutMs, () => handle.isAlive())
        live.set(vm.id, m)
        watch(vm.id, m, 0)
        return { bootMs: Date.now() - started }
      } catch (err) {
        retire(m)
        await handle.kill(500)
        await removeRuntimeFiles(vm.id)
        throw err
      }
    },

    /** Memory, devices and (through target.whilePaused) disks of a running or paused VM. */
    async snapshot(id: string, target: SnapshotTarget): Promise<SnapshotResult> {
      const m = live.get(id)
      if (!m) throw new Error('VM has no running VMM')
      return m.handle.snapshot(target)
    },

    /** Stops the guest's CPUs (no host CPU used); memory and agent session stay. */
    async pause(id: string): Promise<void> {
      const m = live.get(id)
      if (!m) throw new Error('VM has no running VMM')
      m.paused = true
      try {
        await m.handle.pause()
      } catch (err) {
        m.paused = false
        throw err
      }
    },

    async resume(id: string): Promise<void> {
      const m = live.get(id)
      if (!m) throw new Error('VM has no running VMM')
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
      live.delete(id)
      await removeRuntimeFiles(id)
    },

    /** Immediate kill (delete, failed operations): no guest cooperation needed. */
    async kill(id: string): Promise<void> {
      const m = live.get(id)
      if (!m) return
      retire(m)
      await m.handle.kill(500)
      live.delete(id)
      await removeRuntimeFiles(id)
    },

    /** After a manager restart: take over a VMM that is still running, or report that it is gone. */
    async reattach(vm: VmRecord, files: BootFiles, net?: BootNet): Promise<boolean> {
      if (!vm.vmmPid || !vm.vmmStartTime) return false
      const handle = await driver.reattach({ vmId: vm.id, pid: vm.vmmPid, startTime: vm.vmmStartTime, spec: specFor(vm, files, net) })
      if (!handle) return false
      const m = newMachine(vm.id, handle, net)
      const { agent } = m
      if (vm.state === 'PAUSED') {
        // Its agent cannot answer until resumed; the session is made on first use after that.
        m.paused = true
        live.set(vm.id, m)
        watch(vm.id, m, 0)
        return true
      }
      let health: Health
      try {
        await agent.waitReady(15_000, () => handle.isAlive())
        health = await readHealth(agent)
      } catch (err) {
        log.warn({ vmId: vm.id, err: (err as Error).message }, 'running VMM found but its agent does not answer; killing it')
        retire(m)
        await handle.kill(500)
        return false
      }
      live.set(vm.id, m)
      watch(vm.id, m, health.uptimeMs)
      return true
    },

    /** Manager shutdown: VMs keep running (they are detached); only our sessions close. */
    detachAll(): void {
      for (const m of live.values()) retire(m)
      live.clear()
    },

    removeRuntimeFiles,
  }
}
export type Machines = ReturnType<typeof createMachines>
