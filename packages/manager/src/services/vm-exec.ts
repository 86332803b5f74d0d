// Work inside a running VM: exec, run-ts, run-js, file transfer, and the logs about it.
// Nothing here takes the VM's lifecycle lock, so many requests run on one VM at once
// (multiplexed on its agent session) and never wait on another VM.
import type { Readable } from 'node:stream'
import { EnvListError, parseEnvList, plainTarMaxBytes, toEnvList, type AgentEventStreamName, type ArchiveFormat, type AgentRequest, type ErrorEvent, type ExecResult, type RunResult } from '@rds/protocol'
import type { Config } from '../config.ts'
import { ApiError, Errors } from '../errors.ts'
import { agentFault, askAgent } from './agent-fault.ts'
import { StreamedCallRecord } from './exec-stream-history.ts'
import { EventRelay } from '../runtime/agent/event-relay.ts'
import type { AgentClient } from '../runtime/agent/client.ts'
import { readTail } from '../runtime/logs/rotating-log.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import type { ExecLogsRepo, ExecLogType } from '../store/exec-logs-repo.ts'
import type { Supervisor } from '../runtime/supervisor/supervisor.ts'
import type { NetworkService } from './network.ts'
import type { SecretBox } from './secret-env.ts'
import type { RecordActivity } from './activity/activity-log.ts'
import { assertState } from './vm-lifecycle.ts'
import type { VmLookup } from './vm-lookup.ts'
import type { MetricsReport } from './metrics/report.ts'
import { gzipDownload, inflateUpload } from './archive-gzip.ts'

export interface ExecInput {
  /** A command line for bash; exactly one of cmd and args. */
  cmd?: string
  /** argv mode: run without a shell. */
  args?: string[]
  cwd?: string
  env?: Record<string, string>
  timeoutMs?: number
  /** Only reachable through the test-hooks route (RDS_TEST_GUEST_ROOT=true). */
  asRoot?: boolean
}

export interface RunInput {
  code?: string
  path?: string
  args?: string[]
  env?: string[]
  timeoutMs?: number
  flags?: string[]
  /** false: a fresh runtime (see RunRequest.warm). */
  warm?: boolean
}

const DEFAULT_TIMEOUT_MS = 30_000
/** Beyond the run's own timeout, how long the manager waits for the agent's answer. */
const REPLY_GRACE_MS = 15_000
/** How long the agent may take to start a streamed command and answer with its headers. */
const STREAM_OPEN_TIMEOUT_MS = 30_000
/** Exec history keeps this much of each output stream, of command or code text, and of the JSON of any other value. */
const LOG_OUTPUT_CAP = 16 * 1024
/** GET /logs reads at most this much of the end of a log (across its rotation). */
const LOG_TAIL_WINDOW = 256 * 1024
export const LOG_TYPES = ['console.log', 'vmm.log'] as const
export type LogType = (typeof LOG_TYPES)[number]
/** The original's names, so its clients keep working. */
export const LOG_TYPE_ALIASES: Record<string, LogType> = {
  'firecracker.log': 'console.log',
  'firecracker.stdout.log': 'vmm.log',
  'firecracker.stderr.log': 'vmm.log',
}

/**
 * What the exec history stores of one call. It is stored and shown again: secret values are
 * masked in it, before anything is cut, so that no cut leaves part of a secret behind.
 */
export function historyOf(input: Record<string, unknown>, result: ExecResult & Partial<RunResult>, secrets: Record<string, string>): { input: Record<string, unknown>; result: Record<string, unknown> } {
  const masked = maskSecrets({ input, result: { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr, result: result.result, error: result.error, timedOut: result.timedOut } }, secrets)
  return { input: cappedFields(masked.input), result: cappedFields(masked.result) }
}

/** Strings are cut at the cap; any other value whose JSON is over it is kept as the cut JSON text, flagged. */
export function cappedFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(fields)) {
    if (typeof value === 'string') {
      out[key] = value.length > LOG_OUTPUT_CAP ? `${value.slice(0, LOG_OUTPUT_CAP)}…[truncated]` : value
      continue
    }
    const json = value === undefined ? undefined : JSON.stringify(value)
    if (json !== undefined && json.length > LOG_OUTPUT_CAP) {
      out[key] = `${json.slice(0, LOG_OUTPUT_CAP)}…[truncated]`
      out[`${key}Truncated`] = true
    } else out[key] = value
  }
  return out
}

/** A run's `env` list; a bad one is a 400 with the original's sentence. */
function callerEnvOf(list: unknown): Map<string, string> {
  try {
    return parseEnvList(list)
  } catch (e) {
    if (e instanceof EnvListError) throw Errors.invalidEnv(e.message)
    throw e
  }
}

const ACTIVITY_TYPES: Record<ExecLogType, string> = { exec: 'exec.command', 'run-ts': 'runTs.executed', 'run-js': 'runJs.executed' }

export function createVmExecService(deps: { config: Config; paths: Paths; vms: VmLookup; machines: Supervisor; network: Pick<NetworkService, 'hasEgress'>; secrets: SecretBox; execLogs: ExecLogsRepo; activity: RecordActivity; metrics: MetricsReport }) {
  const { config, vms, machines, execLogs } = deps

  async function agentFor(id: string, op: 'exec' | 'files') {
    const vm = await vms.get(id)
    assertState(vm, op)
    const m = machines.get(id)
    if (!m) throw Errors.vmStateConflict(`VM must be RUNNING to ${op} (state=${vm.state})`)
    return { vm, agent: m.agent }
  }

  function checkTimeout(timeoutMs: number | undefined, max: number, field: string): number {
    if (timeoutMs !== undefined && timeoutMs > max) throw Errors.timeoutTooLarge(field, max)
    return timeoutMs ?? Math.min(DEFAULT_TIMEOUT_MS, max)
  }

  /**
   * A streamed call: the agent's events relayed with backpressure, the call recorded in the
   * history once it ends, however it ends (exit, error, or the client leaving, which cancels the
   * agent stream: the agent then kills the command).
   */
  async function streamed<R extends AgentEventStreamName>(id: string, agent: AgentClient, route: R, body: AgentRequest<R>, timeoutMs: number, history: { type: ExecLogType; input: Record<string, unknown>; secrets: Record<string, string> }): Promise<Readable> {
    const started = Date.now()
    const { stream, cancel } = await askAgent(id, agent.openEvents(route, body, STREAM_OPEN_TIMEOUT_MS))
    const copy = new StreamedCallRecord(2 * LOG_OUTPUT_CAP)
    let recorded = false
    const save = (gone: boolean) => {
      if (recorded) return
      recorded = true
      void record(id, history.type, history.input, copy.result(Date.now() - started, gone), started, history.secrets)
    }
    const relay = new EventRelay(stream, {
      route,
      maxExitLineBytes: agent.replyCap,
      deadlineMs: timeoutMs + REPLY_GRACE_MS,
      cancel,
      describe: (fault) => errorEvent(agentFault(id, fault)),
      onEvent: (event) => {
        copy.add(event)
        if (event.type === 'exit' || event.type === 'error') save(false)
      },
    })
    relay.once('close', () => save(true))
    return relay
  }

  async function record(vmId: string, type: ExecLogType, input: Record<string, unknown>, result: ExecResult & Partial<RunResult>, startedAt: number, secrets: Record<string, string>) {
    const history = historyOf(input, result, secrets)
    const durationMs = Date.now() - startedAt
    deps.metrics.execFinished(type, durationMs / 1000)
    await execLogs.append(vmId, { timestamp: new Date(startedAt).toISOString(), type, ...history, durationMs }).catch(() => {})
    // The activity log gets the history's input (secret values masked, text capped), never output.
    const { cmd, cwd, path, code, timeoutMs } = history.input
    const meta = type === 'exec' ? { cmd, cwd, timeoutMs } : { path, hasInlineCode: code !== undefined, timeoutMs }
    deps.activity({ type: ACTIVITY_TYPES[type], entityType: 'vm', entityId: vmId, message: `${type} in VM ${vmId} exited with ${result.exitCode}`, meta: { ...meta, exitCode: result.exitCode, timedOut: result.timedOut, durationMs } })
  }

  /** Everything a run needs before it is sent: checked input, the agent, the body and what the history keeps. */
  async function prepareRun(id: string, runtime: 'deno' | 'node', input: RunInput, maxOutputBytes: number, history?: Record<string, unknown>) {
    if (input.code === undefined && input.path === undefined) throw Errors.badRequest('code or path is required')
    const timeoutMs = checkTimeout(input.timeoutMs, config.maxRunTimeoutMs, 'maxRunTsTimeoutMs')
    const callerEnv = callerEnvOf(input.env ?? [])
    const { vm, agent } = await agentFor(id, 'exec')
    const secrets = deps.secrets.envOf(vm)
    // Secrets win over the caller's env, as in the original.
    const env = toEnvList(new Map([...callerEnv, ...Object.entries(secrets)]))
    const body = { runtime, code: input.code, path: input.path, args: input.args, env, timeoutMs, flags: input.flags, allowNet: deps.network.hasEgress(vm), maxOutputBytes, ...(input.warm === false ? { warm: false } : {}) }
    const type: ExecLogType = runtime === 'deno' ? 'run-ts' : 'run-js'
    // The log keeps env names only: values may be credentials.
    const logged = { code: input.code, path: input.path, args: input.args, env: [...callerEnv.keys()], timeoutMs, [runtime === 'deno' ? 'denoFlags' : 'nodeFlags']: input.flags }
    return { agent, body, timeoutMs, secrets, type, logged: history ?? logged }
  }

  /** `history`: what the exec history records as the input instead of the request (peer calls). */
  async function run(id: string, runtime: 'deno' | 'node', input: RunInput, history?: Record<string, unknown>): Promise<RunResult> {
    const p = await prepareRun(id, runtime, input, config.execOutputMaxBytes, history)
    const started = Date.now()
    const result = await askAgent(id, p.agent.call('run', p.body, p.timeoutMs + REPLY_GRACE_MS))
    await record(id, p.type, p.logged, result, started, p.secrets)
    return result
  }

  async function runStream(id: string, runtime: 'deno' | 'node', input: RunInput): Promise<Readable> {
    const p = await prepareRun(id, runtime, input, config.execStreamMaxBytes)
    return streamed(id, p.agent, 'runStream', p.body, p.timeoutMs, { type: p.type, input: { ...p.logged, stream: true }, secrets: p.secrets })
  }

  async function prepareExec(id: string, input: ExecInput, maxOutputBytes: number) {
    if ((input.cmd === undefined) === (input.args === undefined)) throw Errors.invalidCommand()
    const timeoutMs = checkTimeout(input.timeoutMs, config.maxExecTimeoutMs, 'maxExecTimeoutMs')
    const { vm, agent } = await agentFor(id, 'exec')
    const secrets = deps.secrets.envOf(vm)
    const env = { ...input.env, ...secrets }
    const body = { cmd: input.cmd, args: input.args, cwd: input.cwd, env: Object.keys(env).length ? env : undefined, timeoutMs, maxOutputBytes, ...(input.asRoot ? { asRoot: true } : {}) }
    const logged = { cmd: input.cmd, args: input.args, cwd: input.cwd, env: Object.keys(input.env ?? {}), timeoutMs }
    return { agent, body, timeoutMs, secrets, logged }
  }

  return {
    async exec(id: string, input: ExecInput): Promise<ExecResult> {
      const p = await prepareExec(id, input, config.execOutputMaxBytes)
      const started = Date.now()
      const result = await askAgent(id, p.agent.call('exec', p.body, p.timeoutMs + REPLY_GRACE_MS))
      await record(id, 'exec', p.logged, result, started, p.secrets)
      return result
    },

    /**
     * The command's output as NDJSON OutputEvents while it runs. Everything that can be refused
     * (VM, state, body, the agent's own checks) is refused before this resolves, as an error.
     */
    async execStream(id: string, input: ExecInput): Promise<Readable> {
      const p = await prepareExec(id, input, config.execStreamMaxBytes)
      return streamed(id, p.agent, 'execStream', p.body, p.timeoutMs, { type: 'exec', input: { ...p.logged, stream: true }, secrets: p.secrets })
    },
    runTsStream: (id: string, input: RunInput) => runStream(id, 'deno', input),
    runJsStream: (id: string, input: RunInput) => runStream(id, 'node', input),

    runTs: (id: string, input: RunInput, history?: Record<string, unknown>) => run(id, 'deno', input, history),
    runJs: (id: string, input: RunInput, history?: Record<string, unknown>) => run(id, 'node', input, history),

    /** `body`: a tar.gz or plain tar stream; the agent gets plain tar (archive-gzip.ts). */
    async upload(id: string, dest: string, body: Readable): Promise<void> {
      const { agent } = await agentFor(id, 'files')
      const plain = inflateUpload(body, plainTarMaxBytes({ maxEntries: config.uploadMaxEntries, maxBytes: config.uploadMaxBytes }))
      try {
        await askAgent(id, agent.upload('upload', { dest, maxEntries: config.uploadMaxEntries, maxBytes: config.uploadMaxBytes }, plain, 30 * 60_000))
      } finally {
        plain.destroy()
      }
    },

    async download(id: string, path: string, format?: ArchiveFormat): Promise<Readable> {
      const { agent } = await agentFor(id, 'files')
      // Plain tar over the channel; tar.gz is made here (archive-gzip.ts).
      const tar = await askAgent(id, agent.download({ path, format: 'tar' }, 60_000))
      return format === 'tar' ? tar : gzipDownload(tar)
    },

    async logs(id: string, type: LogType, tailLines: number): Promise<{ type: LogType; lines: string[]; truncated: boolean; updatedAt?: string }> {
      await vms.get(id)
      const file = type === 'console.log' ? deps.paths.consoleLog(id) : deps.paths.vmmLog(id)
      const { data, truncated: cut, mtime } = await readTail(file, LOG_TAIL_WINDOW)
      if (!mtime) return { type, lines: [], truncated: false }
      let lines = data.toString('utf8').split('\n')
      if (cut) lines = lines.slice(1) // first line is partial
      if (lines.at(-1) === '') lines.pop()
      const truncated = cut || lines.length > tailLines
      return { type, lines: lines.slice(-tailLines), truncated, updatedAt: mtime.toISOString() }
    },

    async execLogs(id: string, limit: number, type: ExecLogType | 'all') {
      await vms.get(id)
      return execLogs.list(id, { limit, type: type === 'all' ? undefined : type })
    },
  }
}
export type VmExecService = ReturnType<typeof createVmExecService>

/** A fault after the stream began, as the event that ends it: the API's code and sentence. */
function errorEvent(err: unknown): ErrorEvent {
  if (err instanceof ApiError) return { type: 'error', code: err.code, message: err.message }
  return { type: 'error', code: 'agent_unavailable', message: (err as Error)?.message ?? String(err) }
}

/** Shorter values are masked only where a whole string or key equals them (docs/security.md, "Secrets"). */
export const MASK_ANYWHERE_MIN_LENGTH = 4

/**
 * Replaces secret values with a marker naming their key, in every string and every object key
 * inside `v`: a value of MASK_ANYWHERE_MIN_LENGTH characters or more wherever it occurs, a
 * shorter one only where it is the whole string or key (masking "1" inside every number printed
 * would ruin the output and hide nothing). Empty values are never masked.
 */
export function maskSecrets<T>(v: T, secrets: Record<string, string>): T {
  const entries = Object.entries(secrets).filter(([, value]) => value.length > 0)
  if (entries.length === 0) return v
  const keyOf = new Map<string, string>()
  for (const [key, value] of entries) if (!keyOf.has(value)) keyOf.set(value, key)
  const marker = (value: string) => `[secret ${keyOf.get(value)}]`
  // One pass with the longest values first: a secret containing another is masked whole, and a
  // marker already written is never searched again.
  const long = [...keyOf.keys()].filter((value) => value.length >= MASK_ANYWHERE_MIN_LENGTH).sort((a, b) => b.length - a.length)
  const pattern = long.length > 0 ? new RegExp(long.map((value) => value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g') : undefined
  const text = (x: string) => (keyOf.has(x) ? marker(x) : pattern ? x.replace(pattern, marker) : x)
  const walk = (x: unknown): unknown => {
    if (typeof x === 'string') return text(x)
    if (Array.isArray(x)) return x.map(walk)
    // fromEntries defines own properties: a "__proto__" key stays a key, never a prototype.
    if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, val]) => [text(k), walk(val)]))
    return x
  }
  return walk(v) as T
}
