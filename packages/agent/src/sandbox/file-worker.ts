// The agent's side of the file worker (worker/file-worker.ts): one long-lived process per VM,
// running as the user, that does every metadata operation of the file API. A process per
// operation would cost a Node start each time (0.4 s warm under TCG, see docs/architecture.md);
// this one starts on first use, is restarted on the next call if it died (user code may kill it:
// it is the user's process), and is killed if it stops answering. Its replies are as trustworthy
// as the user (who may ptrace it): they are only ever handed back to the API, never acted on.
import { AgentErrorCodes, readLines } from '@rds/protocol'
import type net from 'node:net'
import type { AgentContext } from '../context.ts'
import { AgentFailure } from '../errors.ts'
import { log } from '../log.ts'
import type { WorkerOp, WorkerReply } from '../worker/file-worker-wire.ts'
import { baseEnv } from './env.ts'
import { spawnAsUser, type UserProcess } from './spawn.ts'

/** Requests in flight at once; more is `busy` rather than an unbounded queue in the agent. */
const MAX_IN_FLIGHT = 64
/** A listing of MAX_LIST_ENTRIES entries with long paths stays below this. */
const MAX_REPLY_LINE_BYTES = 48 * 1024 * 1024
const CALL_TIMEOUT_MS = 60_000
const STDERR_LINES_LOGGED = 10

interface Pending {
  resolve: (v: unknown) => void
  reject: (e: unknown) => void
  timer: NodeJS.Timeout
  proc: UserProcess
  op: WorkerOp
  timeoutMs: number
  retried: boolean
}

/**
 * Operations that may run twice with the same outcome. User code can kill the worker at any
 * moment, also between a request and its exit being seen: those are sent once more to a fresh
 * worker; the others (delete, move, commit) fail, since they may have been done already.
 */
const IDEMPOTENT = new Set<WorkerOp['op']>(['stat', 'list', 'glob', 'mkdir', 'mkdirParent', 'chmod', 'unlink'])

export class FileWorker {
  readonly #ctx: AgentContext
  #proc: UserProcess | undefined
  readonly #pending = new Map<number, Pending>()
  #nextId = 1

  constructor(ctx: AgentContext) {
    this.#ctx = ctx
  }

  call(op: WorkerOp, timeoutMs = CALL_TIMEOUT_MS, retried = false): Promise<unknown> {
    if (this.#pending.size >= MAX_IN_FLIGHT) return Promise.reject(new AgentFailure('busy', `more than ${MAX_IN_FLIGHT} file operations at once in this VM; retry`))
    const proc = this.#running()
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new AgentFailure('internal', `the file worker did not answer within ${timeoutMs} ms`))
        // Stuck (or held by user code): a fresh one serves the next call.
        this.#stop(proc)
      }, timeoutMs)
      this.#pending.set(id, { resolve, reject, timer, proc, op, timeoutMs, retried })
      proc.child.stdin!.write(`${JSON.stringify({ ...op, id })}\n`)
    })
  }

  #running(): UserProcess {
    if (this.#proc) return this.#proc
    const { config, workspacePaths } = this.#ctx
    const proc = spawnAsUser(this.#ctx, {
      argv: [config.node, config.fileWorker, 'serve'],
      env: baseEnv(config),
      cwd: workspacePaths.base,
      stdinFd: 'pipe',
    })
    this.#proc = proc
    const { child } = proc
    child.stdin!.on('error', () => {})
    // The user's process writes this: a few lines help a diagnosis, more would flood the log.
    let logged = 0
    child.stderr!.on('data', (c: Buffer) => {
      if (logged++ < STDERR_LINES_LOGGED) log.error(`file worker: ${c.toString('utf8').slice(0, 500).trim()}`)
    })
    readLines(child.stdout as net.Socket, MAX_REPLY_LINE_BYTES, (line) => this.#onReply(line), () => {})
    const ended = (): void => {
      proc.release()
      if (this.#proc === proc) this.#proc = undefined
      for (const [id, p] of this.#pending) {
        if (p.proc !== proc) continue
        clearTimeout(p.timer)
        this.#pending.delete(id)
        if (!p.retried && IDEMPOTENT.has(p.op.op)) this.call(p.op, p.timeoutMs, true).then(p.resolve, p.reject)
        else p.reject(new AgentFailure('internal', 'the file worker ended during the operation (it is the sandbox user\'s process; retry)'))
      }
    }
    child.once('exit', ended)
    // Not even started (no Node, no rds-exec): its calls fail now, not at their deadline.
    child.once('error', (e) => {
      log.error(`file worker: ${e.message}`)
      ended()
    })
    return proc
  }

  #onReply(line: string): void {
    let reply: WorkerReply
    try {
      reply = JSON.parse(line) as WorkerReply
    } catch {
      return
    }
    const p = this.#pending.get(reply?.id)
    if (!p) return
    this.#pending.delete(reply.id)
    clearTimeout(p.timer)
    if (reply.error) {
      // The worker is the user's process: only codes of the protocol get through, as text.
      const code = AgentErrorCodes.includes(reply.error.code) && reply.error.code !== 'busy' ? reply.error.code : 'internal'
      p.reject(new AgentFailure(code, String(reply.error.message).slice(0, 1000)))
    } else p.resolve(reply.value)
  }

  #stop(proc: UserProcess): void {
    proc.killAll()
    if (this.#proc === proc) this.#proc = undefined
  }

  close(): void {
    if (this.#proc) this.#stop(this.#proc)
  }
}
