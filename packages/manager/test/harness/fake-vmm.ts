// A VMM driver without a VMM, so the services can be tested in seconds: a "VM" is a scripted
// agent (scripted-agent.ts) on the spec's control socket, speaking the real channel (resync,
// HTTP/2) to the real AgentClient. No process is started and the host's clock, network and
// /dev/kvm are never touched: pids are above the kernel's PID_MAX_LIMIT, so whatever signals
// one (the supervisor's stray sweep) reaches no process. The VMs outlive the services that
// booted them, as QEMU processes outlive a manager: a test restarts the manager around them.
import fs from 'node:fs'
import http2 from 'node:http2'
import { AGENT_PROTOCOL_VERSION, AgentPaths, type ExecRequest, type ExecResult, type Health, type InitRequest } from '@rds/protocol'
import type { BootSpec, SavedState, SavedVmm, SnapshotResult, SnapshotTarget, VmExit, VmHandle, VmmDriver } from '../../src/runtime/vmm/driver.ts'
import { asVmmError, VmmError } from '../../src/runtime/vmm/vmm-error.ts'
import { listenScriptedAgent, type ScriptedAgent } from './scripted-agent.ts'

/** Linux never hands out a pid above this (2^22). */
const PID_MAX_LIMIT = 4_194_304

/** What a test may look at of a fake VM. */
export interface FakeVm {
  readonly vmId: string
  readonly pid: number
  /** How this VMM started: a cold boot, or a restore from a saved state. */
  readonly origin: 'boot' | 'restore'
  readonly spec: BootSpec
  /** The guest RAM it was given: FakeVmm.bootRamBytes on a boot, the saved state's on a restore. */
  readonly ramBytes: number
  readonly paused: boolean
  readonly exit: VmExit | undefined
  /** Every init the host pushed (one per agent session). */
  readonly inits: readonly InitRequest[]
  /** "METHOD /path" of every request the agent received, in order. */
  readonly requests: readonly string[]
  readonly uploads: ReadonlyArray<{ path: string; bytes: Buffer }>
}

const EXEC_OK: ExecResult = { exitCode: 0, stdout: '', stderr: '', timedOut: false, stdoutTruncated: false, stderrTruncated: false, durationMs: 0 }

class FakeMachine implements FakeVm {
  readonly vmId: string
  readonly pid: number
  readonly startTime: string
  readonly origin: 'boot' | 'restore'
  readonly spec: BootSpec
  readonly ramBytes: number
  readonly exited: Promise<VmExit>
  paused = false
  /** The next snapshot fails with 'state_too_large' (FakeVmm.overflowNextSnapshot). */
  overflowSnapshot = false
  exit: VmExit | undefined
  /** Health requests are left unanswered (the other paths still answer). */
  healthSilent = false
  /** The agent never answers the resync: the guest never comes up. */
  readonly mute: boolean
  readonly inits: InitRequest[] = []
  readonly requests: string[] = []
  /** Every upload the agent received: its path with the query, and the archive's bytes. */
  readonly uploads: Array<{ path: string; bytes: Buffer }> = []
  /** How exec answers (on top of exit 0 and no output); set from FakeVmm.answerExec. */
  execAnswer: ((req: ExecRequest) => Partial<ExecResult> | Promise<Partial<ExecResult>>) | undefined
  private readonly bornAt = performance.now()
  private agent: ScriptedAgent | undefined
  private resolveExit!: (e: VmExit) => void
  private unpaused: Promise<void> = Promise.resolve()
  private unpause = () => {}

  constructor(o: { spec: BootSpec; ramBytes: number; pid: number; origin: 'boot' | 'restore'; mute: boolean }) {
    this.vmId = o.spec.vmId
    this.spec = o.spec
    this.ramBytes = o.ramBytes
    this.pid = o.pid
    this.startTime = `fake-${o.pid}`
    this.origin = o.origin
    this.mute = o.mute
    this.exited = new Promise((resolve) => (this.resolveExit = resolve))
  }

  async listen(): Promise<void> {
    // The run directory is the driver's to make (the QEMU driver makes it for the VMM's uid).
    fs.mkdirSync(this.spec.workDir, { recursive: true, mode: 0o700 })
    this.agent = await listenScriptedAgent(this.spec.controlSocket, { onStream: (s, h) => void this.answer(s, h).catch(() => s.destroy()), answersResync: () => !this.mute })
  }

  pause(): void {
    if (this.paused) return
    this.paused = true
    this.unpaused = new Promise((resolve) => (this.unpause = resolve))
  }

  resume(): void {
    this.paused = false
    this.unpause()
  }

  /** The VMM process ends, however: its channel goes with it. */
  end(exit: VmExit): void {
    if (this.exit) return
    this.exit = exit
    this.resume()
    void Promise.resolve(this.agent?.close()).then(() => this.resolveExit(exit))
  }

  private async answer(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
    const method = String(headers[':method'])
    const path = String(headers[':path'])
    this.requests.push(`${method} ${path}`)
    const chunks: Buffer[] = []
    for await (const c of stream) chunks.push(c as Buffer)
    const raw = Buffer.concat(chunks)
    const upload = path.split('?')[0] === AgentPaths.upload
    if (upload) this.uploads.push({ path, bytes: raw })
    const body = chunks.length && !upload ? (JSON.parse(raw.toString('utf8')) as unknown) : undefined
    // A paused guest runs no code: its agent answers once it is resumed.
    await this.unpaused
    if (stream.destroyed || this.exit) return
    const json = (status: number, value: unknown) => {
      stream.respond({ ':status': status, 'content-type': 'application/json' })
      stream.end(JSON.stringify(value))
    }
    switch (`${method} ${path}`) {
      case `GET ${AgentPaths.health}`: {
        if (this.healthSilent) return
        const health: Health = { status: 'ok', agentVersion: 'fake', protocolVersion: AGENT_PROTOCOL_VERSION, uptimeMs: Math.round(performance.now() - this.bornAt) }
        return json(200, health)
      }
      case `POST ${AgentPaths.init}`:
        this.inits.push(body as InitRequest)
        return json(200, { agentVersion: 'fake', protocolVersion: AGENT_PROTOCOL_VERSION })
      case `POST ${AgentPaths.exec}`:
        return json(200, { ...EXEC_OK, ...(await this.execAnswer?.(body as ExecRequest)) })
      case `POST ${AgentPaths.run}`:
        return json(200, EXEC_OK)
      case `POST ${AgentPaths.shutdown}`:
        // As the real agent: accepted, then the guest init powers off.
        stream.respond({ ':status': 202 }, { endStream: true })
        return void setTimeout(() => this.end({ code: 0, signal: null }), 10)
      default:
        if (upload) return void stream.respond({ ':status': 204 }, { endStream: true })
        return json(404, { code: 'invalid_request', message: `no route ${method} ${path}` })
    }
  }
}

class FakeHandle implements VmHandle {
  readonly channels: { control: string; bridge: string; console: string }
  private readonly m: FakeMachine

  constructor(m: FakeMachine) {
    this.m = m
    this.channels = { control: m.spec.controlSocket, bridge: m.spec.bridgeSocket, console: m.spec.consoleSocket }
  }

  get pid(): number {
    return this.m.pid
  }
  get startTime(): string {
    return this.m.startTime
  }
  get exited(): Promise<VmExit> {
    return this.m.exited
  }

  isAlive(): boolean {
    return !this.m.exit
  }

  private mustLive(kind: 'control_failed' | 'snapshot_failed'): void {
    if (this.m.exit) throw new VmmError(kind, `fake VMM of ${this.m.vmId} has exited`)
  }

  async pause(): Promise<void> {
    this.mustLive('control_failed')
    this.m.pause()
  }

  async resume(): Promise<void> {
    this.mustLive('control_failed')
    this.m.resume()
  }

  /** Placeholder state and memory files; the disk copy (whilePaused) is the caller's, and real. */
  async snapshot(target: SnapshotTarget): Promise<SnapshotResult> {
    this.mustLive('snapshot_failed')
    const wasRunning = !this.m.paused
    const t0 = performance.now()
    this.m.pause()
    try {
      const memoryInFile = this.m.spec.memory.shared
      fs.writeFileSync(target.stateFile, JSON.stringify({ fakeState: this.m.vmId, memoryInFile }))
      if (this.m.overflowSnapshot) {
        // As the QEMU driver's cap reports a stream past guest RAM + device state (qemu/byte-cap.ts).
        this.m.overflowSnapshot = false
        throw new VmmError('state_too_large', 'fake VMM: state stream over its cap', { maxBytes: 1234 })
      }
      if (memoryInFile) fs.writeFileSync(target.memoryFile, `fake memory of ${this.m.vmId}\n`)
      await target.whilePaused()
      return { pauseMs: Math.round(performance.now() - t0), memoryInFile, ramBytes: this.m.ramBytes }
    } catch (err) {
      throw asVmmError(err, 'snapshot_failed')
    } finally {
      if (wasRunning) this.m.resume()
    }
  }

  async kill(): Promise<void> {
    this.m.end({ code: 0, signal: null })
    await this.m.exited
  }
}

export class FakeVmm implements VmmDriver {
  readonly runFiles: readonly string[] = []
  private readonly machines = new Map<string, FakeMachine>()
  private nextPid = PID_MAX_LIMIT + 1
  private bootFailure: string | undefined
  private restoreFailure: string | undefined
  private muteNext = false
  private execAnswer: ((req: ExecRequest) => Partial<ExecResult> | Promise<Partial<ExecResult>>) | undefined

  describe() {
    return { vmm: 'fake', accel: 'tcg' as const }
  }

  /** What a boot gives a guest beyond its memMb (as QEMU gives a TCG guest 8 KiB more). */
  ramPadBytes = 0
  /** What the memory budget counts for each VMM beside its guest (QEMU: its own memory and TCG's cache). */
  overheadMb = 0

  vmmOverheadMb(): number {
    return this.overheadMb
  }

  bootRamBytes(memMb: number): number {
    return memMb * 1024 * 1024 + this.ramPadBytes
  }

  /** The next boot() throws VmmError('start_failed'), as a VMM that could not start. */
  failNextBoot(reason = 'fake VMM: could not start'): void {
    this.bootFailure = reason
  }

  /** The next restore() throws VmmError('restore_failed'), as a saved state that does not load. */
  failNextRestore(reason = 'fake VMM: the saved state did not load'): void {
    this.restoreFailure = reason
  }

  /** The VM's next snapshot fails as a VMM whose state stream passed its byte cap. */
  overflowNextSnapshot(vmId: string): void {
    this.machines.get(vmId)!.overflowSnapshot = true
  }

  /** How the agents of VMs started from now on answer exec (undefined: exit 0, no output). */
  answerExec(answer: ((req: ExecRequest) => Partial<ExecResult> | Promise<Partial<ExecResult>>) | undefined): void {
    this.execAnswer = answer
  }

  /** The next VM's agent never answers: its boot runs into BOOT_TIMEOUT_MS. */
  muteNextAgent(): void {
    this.muteNext = true
  }

  /** The VM's VMM exits on its own (a guest panic, a killed process). */
  async crash(vmId: string, signal = 'SIGKILL'): Promise<void> {
    const m = this.live(vmId)
    m.end({ code: null, signal })
    await m.exited
  }

  /** The VM's agent leaves health checks unanswered (true) or answers them again (false). */
  silenceHealth(vmId: string, silent = true): void {
    this.live(vmId).healthSilent = silent
  }

  /** The VM's latest VMM, running or not. */
  vm(vmId: string): FakeVm | undefined {
    return this.machines.get(vmId)
  }

  /** The latest VMM of every VM this driver ever started, in start order. */
  vms(): FakeVm[] {
    return [...this.machines.values()]
  }

  /** Ids of the VMs whose VMM runs. */
  running(): string[] {
    return [...this.machines.values()].filter((m) => !m.exit).map((m) => m.vmId)
  }

  async boot(spec: BootSpec): Promise<VmHandle> {
    const failure = this.bootFailure
    this.bootFailure = undefined
    if (failure) throw new VmmError('start_failed', failure)
    return this.start(spec, this.bootRamBytes(spec.memMb), 'boot', 'start_failed')
  }

  async restore(spec: BootSpec, state: SavedState): Promise<VmHandle> {
    const failure = this.restoreFailure
    this.restoreFailure = undefined
    if (failure) throw new VmmError('restore_failed', failure)
    // What QEMU would fail on: a state, or (saved without RAM) a memory file that is not there.
    for (const f of [state.stateFile, ...(state.withoutRam ? [spec.memory.file] : [])]) {
      if (!fs.existsSync(f)) throw new VmmError('restore_failed', `fake VMM: ${f} does not exist`)
    }
    return this.start(spec, state.ramBytes, 'restore', 'restore_failed')
  }

  async reattach(saved: SavedVmm): Promise<VmHandle | undefined> {
    const m = this.machines.get(saved.vmId)
    if (!m || m.exit || m.pid !== saved.pid || m.startTime !== saved.startTime) return undefined
    return new FakeHandle(m)
  }

  sweep(keep: (vmId: string) => boolean): number[] {
    const strays = [...this.machines.values()].filter((m) => !m.exit && !keep(m.vmId))
    for (const m of strays) m.end({ code: null, signal: 'SIGKILL' })
    return strays.map((m) => m.pid)
  }

  /** Ends every fake VM (test teardown). */
  async close(): Promise<void> {
    const live = [...this.machines.values()].filter((m) => !m.exit)
    for (const m of live) m.end({ code: 0, signal: null })
    await Promise.all(live.map((m) => m.exited))
  }

  private live(vmId: string): FakeMachine {
    const m = this.machines.get(vmId)
    if (!m || m.exit) throw new Error(`fake VM ${vmId} is not running`)
    return m
  }

  private async start(spec: BootSpec, ramBytes: number, origin: 'boot' | 'restore', kind: 'start_failed' | 'restore_failed'): Promise<VmHandle> {
    // What QEMU opens before it runs anything.
    for (const f of [spec.kernel, spec.initrd, spec.rootfs, spec.overlay]) {
      if (f !== undefined && !fs.existsSync(f)) throw new VmmError(kind, `fake VMM: ${f} does not exist`)
    }
    const previous = this.machines.get(spec.vmId)
    // The services must never do this; a real VMM would not notice, so the fake says it loudly.
    if (previous && !previous.exit) throw new Error(`fake VMM: ${spec.vmId} already has a running VMM (two VMMs on one disk)`)
    const m = new FakeMachine({ spec, ramBytes, pid: this.nextPid++, origin, mute: this.muteNext })
    this.muteNext = false
    m.execAnswer = (req) => this.execAnswer?.(req) ?? {}
    await m.listen()
    this.machines.delete(spec.vmId)
    this.machines.set(spec.vmId, m)
    return new FakeHandle(m)
  }
}
