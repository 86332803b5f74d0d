// envd's process.Process service (E2B's process.proto) on our background processes
// (services/vm-processes.ts). E2B's pid is the agent's pid. A command's output is the agent's
// replay buffer followed live, so nothing said between Start and the first read is lost. A
// client that goes away only stops its reading: the process runs on (E2B's behaviour); a
// Connect-Timeout-Ms, when not 0, is the process's timeout, enforced by the agent.
import { Readable } from 'node:stream'
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from '@connectrpc/connect'
import type { OutputEvent, ProcessInfo as OurProcessInfo, ProcessSignal } from '@rds/protocol'
import { chunkBytes } from '@rds/protocol'
import type { VmProcessService } from '../../services/vm-processes.ts'
import type { E2bSandboxes } from '../../services/e2b/sandboxes.ts'
import { isCodeContextProcess } from '../../services/e2b/interpreter/code-contexts.ts'
import { Process, Signal, type ProcessSelector } from './gen/process_pb.js'
import { connectCall } from './connect-errors.ts'
import { guestPathOf } from './home-paths.ts'
import { keepaliveIntervalMs, withKeepalive } from './keepalive.ts'
import { sandboxIdOf } from './sandbox-header.ts'

const CONNECT_TIMEOUT_HEADER = 'connect-timeout-ms'
const KEEPALIVE_HEADER = 'keepalive-ping-interval'

type EventInit = { event: { case: 'start'; value: { pid: number } } | { case: 'data'; value: { output: { case: 'stdout' | 'stderr' | 'pty'; value: Uint8Array } } } | { case: 'end'; value: { exitCode: number; exited: boolean; status: string; error?: string } } | { case: 'keepalive'; value: object } }

/**
 * E2B's enum names only SIGTERM and SIGKILL, but proto3 enums are open: a client may send another
 * signal by its number (`"signal": 2`). Those our process API sends are taken (SIGKILL is a kill).
 */
const SIGNAL_BY_NUMBER: Record<number, ProcessSignal> = { 1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 10: 'SIGUSR1', 12: 'SIGUSR2', 14: 'SIGALRM', 15: 'SIGTERM', 18: 'SIGCONT', 19: 'SIGSTOP', 20: 'SIGTSTP', 28: 'SIGWINCH' }

export function signalOf(n: number): ProcessSignal | undefined {
  return SIGNAL_BY_NUMBER[n]
}

const keepaliveEvent = (): { event: EventInit } => ({ event: { event: { case: 'keepalive', value: {} } } })

/** A Connect timeout is the SDK's `timeoutMs` for the command; 0 (or none) is no limit. */
function processTimeoutMs(ctx: HandlerContext): number | undefined {
  const n = Number(ctx.requestHeader.get(CONNECT_TIMEOUT_HEADER))
  return Number.isInteger(n) && n > 0 ? n : undefined
}

function endOf(e: Extract<OutputEvent, { type: 'exit' }>): EventInit['event'] {
  const bySignal = e.exitCode > 128 && e.exitCode < 160
  const status = e.timedOut ? 'signal: killed' : bySignal ? `signal: ${e.exitCode - 128}` : `exit status ${e.exitCode}`
  return { case: 'end', value: { exitCode: e.exitCode, exited: !bySignal && !e.timedOut, status, ...(e.timedOut ? { error: 'the command ran past its timeout and was killed' } : {}) } }
}

function eventOf(e: OutputEvent, pty: boolean): EventInit['event'] {
  if (e.type === 'exit') return endOf(e)
  if (e.type === 'error') return { case: 'end', value: { exitCode: -1, exited: false, status: 'error', error: `${e.code}: ${e.message}` } }
  return { case: 'data', value: { output: { case: pty ? 'pty' : e.type, value: new Uint8Array(chunkBytes(e)) } } }
}

export function envdProcessService(processes: VmProcessService, sandboxes: E2bSandboxes) {
  async function pidOf(id: string, sel: ProcessSelector | undefined): Promise<number> {
    const s = sel?.selector
    if (s?.case === 'pid') return s.value
    if (s?.case === 'tag') {
      const found = (await processes.list(id)).find((p) => p.tag === s.value && p.state === 'running')
      if (found) return found.pid
      throw new ConnectError(`no running process tagged ${JSON.stringify(s.value)}`, Code.NotFound)
    }
    throw new ConnectError('a process selector (pid or tag) is required', Code.InvalidArgument)
  }

  /** The process's events from `since` on, ending with its end event; only our reading stops when the client leaves. */
  async function* follow(id: string, info: OurProcessInfo, ctx: HandlerContext, since: { stdout: number; stderr: number }) {
    const { events, cancel } = await connectCall(() => processes.output(id, info.pid, { follow: true, since: since.stdout, stderrSince: since.stderr }))
    const stop = () => cancel()
    ctx.signal.addEventListener('abort', stop, { once: true })
    try {
      const mapped = (async function* () {
        for await (const e of events) yield { event: { event: eventOf(e, info.pty !== undefined) } }
      })()
      yield* withKeepalive(mapped, keepaliveIntervalMs(ctx.requestHeader.get(KEEPALIVE_HEADER)), keepaliveEvent)
    } finally {
      ctx.signal.removeEventListener('abort', stop)
      cancel()
    }
  }

  return (router: ConnectRouter) =>
    router.service(Process, {
      async *start(req, ctx) {
        const id = sandboxIdOf(ctx)
        const cfg = req.process
        if (!cfg?.cmd) throw new ConnectError('process.cmd is required', Code.InvalidArgument)
        const env = { ...(await sandboxes.envVarsOf(id)), ...cfg.envs }
        const size = req.pty?.size
        const info = await connectCall(() =>
          processes.start(id, {
            // E2B's SDKs send /bin/bash -l -c <command>: argv as given, so the login shell is theirs.
            args: [cfg.cmd, ...cfg.args],
            cwd: guestPathOf(cfg.cwd ?? ''),
            env: Object.keys(env).length ? env : undefined,
            // E2B's default for old clients that do not say is an open stdin.
            stdin: req.pty ? undefined : (req.stdin ?? true),
            pty: size ? { cols: size.cols, rows: size.rows } : undefined,
            tag: req.tag,
            timeoutMs: processTimeoutMs(ctx),
          }),
        )
        yield { event: { event: { case: 'start', value: { pid: info.pid } } } }
        yield* follow(id, info, ctx, { stdout: 0, stderr: 0 })
      },

      async *connect(req, ctx) {
        const id = sandboxIdOf(ctx)
        const pid = await connectCall(async () => pidOf(id, req.process))
        const info = await connectCall(() => processes.get(id, pid))
        yield { event: { event: { case: 'start', value: { pid } } } }
        // From now on: what was said before the connect is not repeated.
        yield* follow(id, info, ctx, { stdout: info.stdoutBytes, stderr: info.stderrBytes })
      },

      async list(_req, ctx) {
        const id = sandboxIdOf(ctx)
        const all = await connectCall(() => processes.list(id))
        return {
          processes: all
            // The code interpreter's contexts are its own, as E2B's Jupyter server is not an envd process.
            .filter((p) => p.state === 'running' && !isCodeContextProcess(p))
            .map((p) => ({ pid: p.pid, tag: p.tag, config: { cmd: p.args?.[0] ?? p.cmd, args: p.args?.slice(1) ?? [], envs: {} } })),
        }
      },

      async sendInput(req, ctx) {
        const id = sandboxIdOf(ctx)
        const pid = await connectCall(() => pidOf(id, req.process))
        const bytes = req.input?.input.value
        if (bytes?.length) await connectCall(() => processes.stdin(id, pid, Readable.from([Buffer.from(bytes)]), false))
        return {}
      },

      async closeStdin(req, ctx) {
        const id = sandboxIdOf(ctx)
        const pid = await connectCall(() => pidOf(id, req.process))
        await connectCall(() => processes.stdin(id, pid, Readable.from([]), true))
        return {}
      },

      async sendSignal(req, ctx) {
        const id = sandboxIdOf(ctx)
        const pid = await connectCall(() => pidOf(id, req.process))
        if (req.signal === Signal.SIGKILL) {
          await connectCall(() => processes.kill(id, pid))
          return {}
        }
        const signal = signalOf(req.signal)
        if (!signal) throw new ConnectError(`signal ${req.signal} is not one we send: SIGTERM, SIGKILL, or by number ${Object.keys(SIGNAL_BY_NUMBER).join(', ')}`, Code.InvalidArgument)
        await connectCall(() => processes.signal(id, pid, signal))
        return {}
      },

      async update(req, ctx) {
        const id = sandboxIdOf(ctx)
        const pid = await connectCall(() => pidOf(id, req.process))
        const size = req.pty?.size
        if (size) await connectCall(() => processes.resize(id, pid, { cols: size.cols, rows: size.rows }))
        return {}
      },

      async streamInput() {
        throw new ConnectError('StreamInput is not served: use SendInput', Code.Unimplemented)
      },
    })
}
