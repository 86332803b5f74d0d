// Runs a program as the unprivileged user through rds-exec, in its own cgroup and session, and
// collects its output with per-stream caps. The helper does the privileged steps (cgroup move,
// setsid, drop groups/gid/uid, no_new_privs, chdir) between fork and exec, so no user code ever
// runs with the agent's privileges.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import os from 'node:os'
import type { Readable } from 'node:stream'
import { PIPE_DRAIN_GRACE_MS, PIPE_DRAIN_MAX_MS, type AgentConfig } from '../config.ts'
import type { CgroupManager } from './cgroup.ts'

export interface UserSpawnOptions {
  argv: readonly string[]
  env: Record<string, string>
  cwd: string
  /** Child's stdin: an fd to read from, a pipe of ours ('pipe'), or nothing (/dev/null). */
  stdinFd?: number | 'pipe'
  /** Becomes fd 3 in the child: an fd, or a pipe of ours ('pipe': child.stdio[3]). */
  fd3?: number | 'pipe'
  /** Run the program on a fresh pseudo-terminal of this size (rds-exec --pty; fd 3 is its control pipe). */
  pty?: { cols: number; rows: number }
  /** uid/gid 0 instead of the user (test guests only; see ExecRequest.asRoot). */
  asRoot?: boolean
}

export interface UserProcess {
  child: ChildProcess
  /** Kills every process the child started, including ones that left its process group. */
  killAll(): void
  /** Kills what is left in the child's cgroup only: for after its exit, when its pid may be another process's. */
  killCgroup(): void
  /** Call once the child exited; removes the cgroup now or once its last process is gone. */
  release(): void
}

/** How this guest starts user processes, beyond the fixed uid, cgroup and session. */
export interface LaunchPolicy {
  /**
   * Address-space randomisation for user processes. The host turns it off under emulation (its
   * /init, InitRequest.userAslr): QEMU's TCG then reuses the translated code of the last
   * process's bash, libc or runtime instead of translating it afresh.
   */
  userAslr: boolean
}

/** What starting a user process needs: the agent's context provides all three. */
export interface UserSandbox {
  config: AgentConfig
  cgroups: CgroupManager
  launch: LaunchPolicy
}

export function spawnAsUser(sandbox: UserSandbox, opts: UserSpawnOptions): UserProcess {
  const { config, cgroups } = sandbox
  const cgroup = cgroups.create(randomUUID())
  const helperArgs = [
    ...(cgroup ? ['--cgroup', cgroup] : []),
    '--uid', String(opts.asRoot ? 0 : config.uid),
    '--gid', String(opts.asRoot ? 0 : config.gid),
    '--cwd', opts.cwd,
    // Files the user creates get the usual modes whatever umask PID 1 handed the agent.
    '--umask', '022',
    // Close every inherited descriptor beyond stdio (and the result pipe of a run).
    '--keep-fds', opts.fd3 !== undefined ? '4' : '3',
    ...(opts.pty ? ['--pty', `${opts.pty.cols}x${opts.pty.rows}`] : []),
    ...(sandbox.launch.userAslr ? [] : ['--no-aslr']),
    '--',
    ...opts.argv,
  ]
  const stdio: (number | 'pipe' | 'ignore')[] = [opts.stdinFd ?? 'ignore', 'pipe', 'pipe']
  if (opts.fd3 !== undefined) stdio.push(opts.fd3)
  const child = spawn(config.execHelper, helperArgs, { env: opts.env, stdio })
  let released = false
  return {
    child,
    killAll() {
      if (cgroup) cgroups.kill(cgroup)
      // rds-exec calls setsid(), so the child's pid is also its process group id.
      for (const target of child.pid ? [-child.pid, child.pid] : []) {
        try {
          process.kill(target, 'SIGKILL')
        } catch {}
      }
    },
    killCgroup() {
      if (cgroup) cgroups.kill(cgroup)
    },
    release() {
      if (released || !cgroup) return
      released = true
      cgroups.release(cgroup)
    },
  }
}

/** Keeps the first `limit` bytes of a stream and notes whether more arrived. */
export class CappedBuffer {
  readonly #limit: number
  readonly #chunks: Buffer[] = []
  #size = 0
  truncated = false
  constructor(limit: number) {
    this.#limit = limit
  }
  push(chunk: Buffer): void {
    const room = this.#limit - this.#size
    if (chunk.length > room) {
      this.truncated = true
      if (room <= 0) return
      chunk = chunk.subarray(0, room)
    }
    this.#chunks.push(chunk)
    this.#size += chunk.length
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.#chunks)
  }
}

export interface CollectOptions {
  timeoutMs: number
  maxOutputBytes: number
  /** Extra readable (e.g. the run result pipe) collected with its own cap. */
  side?: { stream: Readable; maxBytes: number }
}

export interface Collected {
  exitCode: number
  stdout: Buffer
  stderr: Buffer
  stdoutTruncated: boolean
  stderrTruncated: boolean
  side: Buffer | undefined
  sideTruncated: boolean
  timedOut: boolean
  /** Set when the helper could not be started at all. */
  spawnError: string | undefined
  durationMs: number
}

/**
 * Resolves when the main process has exited and its pipes reached EOF, or, when background
 * processes keep the pipes open, once they were quiet for PIPE_DRAIN_GRACE_MS after the exit. Those
 * pipes stay open and are drained (discarding) so a background server does not die of SIGPIPE.
 */
export function collect(proc: UserProcess, opts: CollectOptions): Promise<Collected> {
  const started = performance.now()
  const { child } = proc
  const out = new CappedBuffer(opts.maxOutputBytes)
  const err = new CappedBuffer(opts.maxOutputBytes)
  const side = opts.side ? new CappedBuffer(opts.side.maxBytes) : undefined
  const streams: [Readable, CappedBuffer][] = [
    [child.stdout!, out],
    [child.stderr!, err],
  ]
  if (opts.side && side) streams.push([opts.side.stream, side])

  return new Promise((resolve) => {
    let done = false
    let timedOut = false
    let exitCode: number | undefined
    let spawnError: string | undefined
    let open = streams.length
    let graceTimer: NodeJS.Timeout | undefined

    const finish = (): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      clearTimeout(graceTimer)
      if (open === 0) proc.release()
      resolve({
        exitCode: timedOut ? -1 : (exitCode ?? -1),
        stdout: out.toBuffer(),
        stderr: err.toBuffer(),
        stdoutTruncated: out.truncated,
        stderrTruncated: err.truncated,
        side: side?.toBuffer(),
        sideTruncated: side?.truncated ?? false,
        timedOut,
        spawnError,
        durationMs: Math.round(performance.now() - started),
      })
    }
    // Pipes that background jobs keep open end the collection once they were quiet for a moment
    // after the exit. The check runs after the event loop polled the pipes (setImmediate): on a
    // slow guest a late timer must not cut off output the command wrote just before it exited.
    let lastDataAt = 0
    let exitedAt = 0
    const armGrace = (): void => {
      graceTimer = setTimeout(() => setImmediate(() => {
        if (done) return
        const now = performance.now()
        if (now - lastDataAt < PIPE_DRAIN_GRACE_MS && now - exitedAt < PIPE_DRAIN_MAX_MS) return armGrace()
        finish()
      }), PIPE_DRAIN_GRACE_MS)
    }
    const maybeFinish = (): void => {
      if (exitCode === undefined && spawnError === undefined) return
      exitedAt ||= performance.now()
      if (open === 0) finish()
      else if (!graceTimer) armGrace()
    }

    for (const [stream, buf] of streams) {
      stream.on('data', (c: Buffer) => {
        lastDataAt = performance.now()
        if (!done) buf.push(c)
      })
      stream.once('close', () => {
        open--
        if (done && open === 0) proc.release()
        else maybeFinish()
      })
      stream.on('error', () => {})
    }

    const timer = setTimeout(() => {
      timedOut = true
      proc.killAll()
    }, opts.timeoutMs)

    child.once('error', (e) => {
      // Only spawn failures arrive here before 'exit'; kill errors are not ours to report.
      if (exitCode !== undefined) return
      spawnError = e.message
      for (const [s] of streams) s.destroy()
      maybeFinish()
    })
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : -1)
      maybeFinish()
    })
  })
}
