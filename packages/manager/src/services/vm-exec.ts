// Work inside a running VM: exec, run-ts, run-js, file transfer, and the logs about it.
// Nothing here takes the VM's lifecycle lock, so many requests run on one VM at once
// (multiplexed on its agent session) and never wait on another VM.
import type { Readable } from 'node:stream'
import { EnvListError, parseEnvList, toEnvList, type ExecResult, type RunResult } from '@rds/protocol'
import type { Config } from '../config.ts'
import { Errors } from '../errors.ts'
import { askAgent } from './agent-fault.ts'
import { readTail } from '../runtime/logs/rotating-log.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import type { ExecLogsRepo, ExecLogType } from '../store/exec-logs-repo.ts'
import type { Supervisor } from '../runtime/supervisor/supervisor.ts'
import type { NetworkService } from './network.ts'
import type { SecretBox } from './secret-env.ts'
import type { RecordActivity } from './activity/activity-log.ts'
import { assertState } from './vm-lifecycle.ts'
import type { VmLookup } from './vm-lookup.ts'

export interface ExecInput {
  cmd: string
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
}

const DEFAULT_TIMEOUT_MS = 30_000
/** Beyond the run's own timeout, how long the manager waits for the agent's answer. */
const REPLY_GRACE_MS = 15_000
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

export function createVmExecService(deps: { config: Config; paths: Paths; vms: VmLookup; machines: Supervisor; network: Pick<NetworkService, 'hasEgress'>; secrets: SecretBox; execLogs: ExecLogsRepo; activity: RecordActivity }) {
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

  async function record(vmId: string, type: ExecLogType, input: Record<string, unknown>, result: ExecResult & Partial<RunResult>, startedAt: number, secrets: Record<string, string>) {
    const history = historyOf(input, result, secrets)
    const durationMs = Date.now() - startedAt
    await execLogs.append(vmId, { timestamp: new Date(startedAt).toISOString(), type, ...history, durationMs }).catch(() => {})
    // The activity log gets the history's input (secret values masked, text capped), never output.
    const { cmd, cwd, path, code, timeoutMs } = history.input
    const meta = type === 'exec' ? { cmd, cwd, timeoutMs } : { path, hasInlineCode: code !== undefined, timeoutMs }
    deps.activity({ type: ACTIVITY_TYPES[type], entityType: 'vm', entityId: vmId, message: `${type} in VM ${vmId} exited with ${result.exitCode}`, meta: { ...meta, exitCode: result.exitCode, timedOut: result.timedOut, durationMs } })
  }

  /** `history`: what the exec history records as the input instead of the request (peer calls). */
  async function run(id: string, runtime: 'deno' | 'node', input: RunInput, history?: Record<string, unknown>): Promise<RunResult> {
    if (input.code === undefined && input.path === undefined) throw Errors.badRequest('code or path is required')
    const timeoutMs = checkTimeout(input.timeoutMs, config.maxRunTimeoutMs, 'maxRunTsTimeoutMs')
    const callerEnv = callerEnvOf(input.env ?? [])
    const { vm, agent } = await agentFor(id, 'exec')
    const secrets = deps.secrets.envOf(vm)
    // Secrets win over the caller's env, as in the original.
    const env = toEnvList(new Map([...callerEnv, ...Object.entries(secrets)]))
    const started = Date.now()
    const body = { runtime, code: input.code, path: input.path, args: input.args, env, timeoutMs, flags: input.flags, allowNet: deps.network.hasEgress(vm), maxOutputBytes: config.execOutputMaxBytes }
    const result = await askAgent(id, agent.call('run', body, timeoutMs + REPLY_GRACE_MS))
    const type = runtime === 'deno' ? 'run-ts' : 'run-js'
    // The log keeps env names only: values may be credentials.
    const logged = { code: input.code, path: input.path, args: input.args, env: [...callerEnv.keys()], timeoutMs, [runtime === 'deno' ? 'denoFlags' : 'nodeFlags']: input.flags }
    await record(id, type, history ?? logged, result, started, secrets)
    return result
  }

  return {
    async exec(id: string, input: ExecInput): Promise<ExecResult> {
      const timeoutMs = checkTimeout(input.timeoutMs, config.maxExecTimeoutMs, 'maxExecTimeoutMs')
      const { vm, agent } = await agentFor(id, 'exec')
      const started = Date.now()
      const secrets = deps.secrets.envOf(vm)
      const env = { ...input.env, ...secrets }
      const body = { cmd: input.cmd, cwd: input.cwd, env: Object.keys(env).length ? env : undefined, timeoutMs, maxOutputBytes: config.execOutputMaxBytes, ...(input.asRoot ? { asRoot: true } : {}) }
      const result = await askAgent(id, agent.call('exec', body, timeoutMs + REPLY_GRACE_MS))
      await record(id, 'exec', { cmd: input.cmd, cwd: input.cwd, env: Object.keys(input.env ?? {}), timeoutMs }, result, started, secrets)
      return result
    },

    runTs: (id: string, input: RunInput, history?: Record<string, unknown>) => run(id, 'deno', input, history),
    runJs: (id: string, input: RunInput, history?: Record<string, unknown>) => run(id, 'node', input, history),

    /** `body`: a tar.gz stream. */
    async upload(id: string, dest: string, body: Readable): Promise<void> {
      const { agent } = await agentFor(id, 'files')
      await askAgent(id, agent.upload('upload', { dest, maxEntries: config.uploadMaxEntries, maxBytes: config.uploadMaxBytes }, body, 30 * 60_000))
    },

    async download(id: string, path: string): Promise<Readable> {
      const { agent } = await agentFor(id, 'files')
      return askAgent(id, agent.download({ path }, 60_000))
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
