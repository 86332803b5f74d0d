// E2B code-interpreter contexts (`@e2b/code-interpreter`'s runCode, port 49999): each context is
// one long-lived Python process in the sandbox, a background process of ours (vm-processes.ts)
// running driver.py as the sandbox user, with one persistent namespace. The process's tag holds
// the context's id, language and directory, so the agent's process table is the only record:
// nothing is kept here that a manager restart would lose.
import crypto from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Readable } from 'node:stream'
import type { ProcessInfo } from '@rds/protocol'
import { ApiError, Errors } from '../../../errors.ts'
import type { VmProcessService } from '../../vm-processes.ts'
import { driverMessagesOf, e2bLineOf } from './driver-messages.ts'

const DRIVER_SOURCE = readFileSync(new URL('./driver.py', import.meta.url))
/**
 * Run as `python3 -c`: reads the driver's source from stdin (10 decimal digits of length, then
 * the bytes) and runs it. Short, so a process listing shows this rather than the whole driver.
 */
const BOOTSTRAP = [
  'import os',
  'def _r(n):',
  " b=b''",
  ' while len(b)<n:',
  '  c=os.read(0,n-len(b))',
  '  if not c: raise SystemExit(3)',
  '  b+=c',
  ' return b',
  "exec(compile(_r(int(_r(10))),'<rds-interpreter>','exec'))",
].join('\n')

/** Marks a process as a code context: `<prefix> <id> <language> <default|extra> <cwd, URI-encoded>`. */
export const CODE_CONTEXT_TAG_PREFIX = 'e2b-code-context'
const HOME = '/home/user'
const WORKSPACE = '/workspace'
const MAX_CWD = 160
/** Python starts in well under this even under TCG; the bound only catches a driver that never speaks. */
const READY_TIMEOUT_MS = 120_000
/** A killed process is reaped at once; the bound only keeps a stuck agent from holding the request. */
const STOP_WAIT_MS = 10_000
const MAX_REMEMBERED_REMOVALS = 10_000

export type CodeLanguage = 'python'

export interface CodeContext {
  id: string
  language: CodeLanguage
  cwd: string
  pid: number
  isDefault: boolean
  running: boolean
}

/** E2B's language names for what we run; anything else is refused by name (docs/e2b.md). */
export function languageOf(language: string | null | undefined): CodeLanguage {
  const l = (language ?? '').trim().toLowerCase()
  if (l === '' || l === 'python' || l === 'python3') return 'python'
  throw Errors.e2bUnsupportedLanguage(language ?? '')
}

/** A context's directory as E2B names it: absolute, or relative to the home; the default is the home. */
export function contextCwdOf(cwd: string | null | undefined): string {
  const c = (cwd ?? '').trim()
  const abs = c === '' ? HOME : c.startsWith('/') ? c : `${HOME}/${c}`
  if (abs.length > MAX_CWD || abs.includes('\0')) throw Errors.badRequest(`cwd must be a path of at most ${MAX_CWD} characters`)
  return abs
}

export function tagOf(c: Pick<CodeContext, 'id' | 'language' | 'cwd' | 'isDefault'>): string {
  return `${CODE_CONTEXT_TAG_PREFIX} ${c.id} ${c.language} ${c.isDefault ? 'default' : 'extra'} ${encodeURIComponent(c.cwd)}`
}

export function isCodeContextProcess(p: Pick<ProcessInfo, 'tag'>): boolean {
  return p.tag?.startsWith(`${CODE_CONTEXT_TAG_PREFIX} `) === true
}

export function contextOf(p: ProcessInfo): CodeContext | undefined {
  if (!isCodeContextProcess(p)) return undefined
  const [, id, language, kind, cwd] = p.tag!.split(' ')
  if (!id || language !== 'python' || !cwd) return undefined
  let dir: string
  try {
    dir = decodeURIComponent(cwd)
  } catch {
    return undefined
  }
  return { id, language, cwd: dir, pid: p.pid, isDefault: kind === 'default', running: p.state === 'running' }
}

/** What E2B's /contexts routes answer for a context. */
export const contextView = (c: CodeContext) => ({ id: c.id, language: c.language, cwd: c.cwd })

export function createCodeContexts(deps: { processes: VmProcessService; envVarsOf: (vmId: string) => Promise<Record<string, string>> }) {
  const { processes } = deps
  /** One start of a sandbox's default context at a time, so two first runCode calls share it. */
  const startingDefault = new Map<string, Promise<CodeContext>>()
  /**
   * Contexts removed by a client: their ended process stays in the agent's table for a while, and
   * must not come back as a died-and-restarted one. Bounded; a manager restart forgets them, and
   * the agent forgets the process itself after MAX_EXITED_PROCESSES newer exits.
   */
  const removed = new Set<string>()
  const forget = (vmId: string, id: string) => {
    removed.add(`${vmId}/${id}`)
    if (removed.size > MAX_REMEMBERED_REMOVALS) removed.delete(removed.values().next().value!)
  }

  const sendLine = (vmId: string, pid: number, msg: object) => processes.stdin(vmId, pid, Readable.from([Buffer.from(`${JSON.stringify(msg)}\n`)]), false)

  async function all(vmId: string): Promise<CodeContext[]> {
    return (await processes.list(vmId)).map(contextOf).filter((c): c is CodeContext => c !== undefined)
  }

  /** Starts the driver and waits until it says it is ready (or why it is not). */
  async function start(vmId: string, c: Omit<CodeContext, 'pid' | 'running'>): Promise<CodeContext> {
    const env = await deps.envVarsOf(vmId)
    const info = await processes.start(vmId, {
      args: ['python3', '-c', BOOTSTRAP, c.cwd],
      cwd: WORKSPACE,
      env: Object.keys(env).length ? env : undefined,
      stdin: true,
      tag: tagOf(c),
    })
    const { events, cancel } = await processes.output(vmId, info.pid, { follow: true })
    const timer = setTimeout(cancel, READY_TIMEOUT_MS)
    try {
      const header = Buffer.from(String(DRIVER_SOURCE.length).padStart(10, '0'))
      await processes.stdin(vmId, info.pid, Readable.from([header, DRIVER_SOURCE]), false)
      for await (const m of driverMessagesOf(events)) {
        if (m.type === 'ready') return { ...c, pid: info.pid, running: true }
        if (m.type === 'fatal') throw Errors.badRequest(`The code context could not start: ${m.message}`)
        if (m.type === 'gone') break
      }
      throw Errors.e2bCodeContextFailed(`its Python process ended before it was ready (is python3 in the image?)`)
    } catch (err) {
      await processes.kill(vmId, info.pid).catch(() => undefined)
      throw err
    } finally {
      clearTimeout(timer)
      cancel()
    }
  }

  async function find(vmId: string, id: string): Promise<CodeContext> {
    const found = (await all(vmId)).filter((c) => c.id === id)
    const c = found.find((x) => x.running) ?? (removed.has(`${vmId}/${id}`) ? undefined : found[0])
    if (!c) throw Errors.e2bCodeContextNotFound(id)
    return c
  }

  /** A context whose process ended (os._exit, a crash, a kill) comes back with a fresh namespace, as a Jupyter kernel is restarted. */
  async function running(vmId: string, c: CodeContext): Promise<CodeContext> {
    return c.running ? c : start(vmId, c)
  }

  async function defaultContext(vmId: string): Promise<CodeContext> {
    const existing = (await all(vmId)).find((c) => c.isDefault && c.running)
    if (existing) return existing
    let pending = startingDefault.get(vmId)
    if (!pending) {
      pending = start(vmId, { id: crypto.randomUUID(), language: 'python', cwd: HOME, isDefault: true }).finally(() => startingDefault.delete(vmId))
      startingDefault.set(vmId, pending)
    }
    return pending
  }

  /** Kills the context's process and waits until the agent has seen it end, so a list right after no longer shows it. */
  async function stop(vmId: string, c: CodeContext): Promise<void> {
    if (!c.running) return
    const gone = (err: unknown) => {
      if (!(err instanceof ApiError && err.status === 404)) throw err
    }
    await processes.kill(vmId, c.pid).catch(gone)
    for (const until = Date.now() + STOP_WAIT_MS; Date.now() < until; ) {
      const info = await processes.get(vmId, c.pid).catch(gone)
      if (!info || info.state !== 'running') return
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  return {
    async list(vmId: string): Promise<CodeContext[]> {
      return (await all(vmId)).filter((c) => c.running)
    },

    async create(vmId: string, opts: { language?: string | null; cwd?: string | null }): Promise<CodeContext> {
      return start(vmId, { id: crypto.randomUUID(), language: languageOf(opts.language), cwd: contextCwdOf(opts.cwd), isDefault: false })
    },

    async remove(vmId: string, id: string): Promise<void> {
      const c = await find(vmId, id)
      forget(vmId, id)
      await stop(vmId, c)
    },

    /** A fresh namespace under the same id. */
    async restart(vmId: string, id: string): Promise<void> {
      const c = await find(vmId, id)
      await stop(vmId, c)
      await start(vmId, c)
    },

    /** The context an execution runs in: the one named, else the default one for the language. */
    async forExecution(vmId: string, req: { contextId?: string | null; language?: string | null }): Promise<CodeContext> {
      if (req.contextId) return running(vmId, await find(vmId, req.contextId))
      languageOf(req.language)
      return defaultContext(vmId)
    },

    /**
     * Runs `code` in the context and yields E2B's NDJSON lines as the driver sends them. When
     * `signal` aborts (the client went away, or its timeout passed) the execution is interrupted
     * (KeyboardInterrupt in the user's code) and the context stays usable.
     */
    async *execute(vmId: string, c: CodeContext, code: string, envVars: Record<string, string>, signal: AbortSignal): AsyncGenerator<Record<string, unknown>> {
      const execId = crypto.randomUUID()
      const info = await processes.get(vmId, c.pid)
      // From the current end on: what earlier executions wrote is not this one's.
      const { events, cancel } = await processes.output(vmId, c.pid, { follow: true, since: info.stdoutBytes, stderrSince: info.stderrBytes })
      const interrupt = () => {
        void sendLine(vmId, c.pid, { type: 'interrupt', id: execId }).catch(() => undefined)
        cancel()
      }
      signal.addEventListener('abort', interrupt, { once: true })
      try {
        await sendLine(vmId, c.pid, { type: 'execute', id: execId, code, env_vars: envVars })
        for await (const m of driverMessagesOf(events)) {
          if (m.type === 'gone') {
            if (signal.aborted) return
            const how = m.exitCode === undefined ? 'ended' : `ended with exit code ${m.exitCode}`
            yield { type: 'error', name: 'DeadKernelError', value: `The context's Python process ${how}: its state is lost; the next execution starts it again`, traceback: '' }
            yield { type: 'end_of_execution' }
            return
          }
          if (m.type === 'ready' || m.type === 'fatal' || m.id !== execId) continue
          yield e2bLineOf(m)
          if (m.type === 'end_of_execution') return
        }
      } finally {
        signal.removeEventListener('abort', interrupt)
        cancel()
      }
    },
  }
}
export type CodeContexts = ReturnType<typeof createCodeContexts>
