// One background process: the user program started through rds-exec (optionally on a pty), its
// output read into the replay ring, its exit recorded. Readers (output requests) pull from the
// ring; while one of them cannot write (its HTTP/2 stream is not drained), the process's pipes
// are not read, so a program that writes faster than a following client reads blocks in write()
// instead of the agent buffering for it (docs/architecture.md, "Background processes").
import os from 'node:os'
import type { Writable } from 'node:stream'
import { PROCESS_RING_BYTES, type OutputStream, type ProcessInfo, type ProcessSignal, type PtySize } from '@rds/protocol'
import type { UserProcess } from '../sandbox/spawn.ts'
import { OutputRing } from './output-ring.ts'

/**
 * After the exit, how long the pipes may stay quiet before the process counts as ended although
 * something it started still holds them open (a server sent to the background).
 */
const QUIET_AFTER_EXIT_MS = 250

export interface ProcessSpec {
  cmd: string
  args?: string[]
  tag?: string
  timeoutMs?: number
  stdin: boolean
  pty?: PtySize
}

export class BackgroundProcess {
  readonly pid: number
  readonly spec: ProcessSpec
  readonly ring = new OutputRing(PROCESS_RING_BYTES)
  readonly startedAt = new Date()
  endedAt: Date | undefined
  exitCode: number | undefined
  timedOut = false
  readonly #proc: UserProcess
  readonly #control: Writable | undefined
  #exited = false
  /** Set once the exit is known and the pipes were read to their end (or given up on): readers end. */
  #done = false
  #blocked = 0
  /** Output streams open on this process (ProcessInfo.readers). */
  readers = 0
  #waiters: (() => void)[] = []
  #exitListeners: (() => void)[] = []
  #timer: NodeJS.Timeout | undefined
  #grace: NodeJS.Timeout | undefined
  #openPipes = 2
  /** When output last arrived (performance.now()). */
  #lastData = 0

  constructor(proc: UserProcess, spec: ProcessSpec) {
    this.#proc = proc
    this.spec = spec
    this.pid = proc.child.pid!
    this.#control = spec.pty ? (proc.child.stdio[3] as Writable) : undefined
    this.#control?.on('error', () => {})
    proc.child.stdin?.on('error', () => {})
    this.#read('stdout')
    this.#read('stderr')
    proc.child.once('exit', (code, signal) => this.#onExit(code, signal))
    if (spec.timeoutMs !== undefined) {
      this.#timer = setTimeout(() => {
        this.timedOut = true
        this.kill()
      }, spec.timeoutMs)
    }
  }

  get running(): boolean {
    return !this.#exited
  }

  get done(): boolean {
    return this.#done
  }

  get stdin(): Writable | undefined {
    return this.spec.stdin || this.spec.pty ? (this.#proc.child.stdin ?? undefined) : undefined
  }

  info(): ProcessInfo {
    return {
      pid: this.pid,
      ...(this.spec.tag !== undefined ? { tag: this.spec.tag } : {}),
      cmd: this.spec.cmd,
      ...(this.spec.args ? { args: this.spec.args } : {}),
      state: this.#exited ? 'exited' : 'running',
      ...(this.exitCode !== undefined ? { exitCode: this.exitCode, timedOut: this.timedOut } : {}),
      startedAt: this.startedAt.toISOString(),
      ...(this.endedAt ? { endedAt: this.endedAt.toISOString() } : {}),
      stdin: this.spec.stdin || this.spec.pty !== undefined,
      ...(this.spec.pty ? { pty: this.spec.pty } : {}),
      stdoutBytes: this.ring.end('stdout'),
      stderrBytes: this.ring.end('stderr'),
      readers: this.readers,
    }
  }

  get durationMs(): number {
    return (this.endedAt ?? new Date()).getTime() - this.startedAt.getTime()
  }

  /** Resolves at the next change a reader may care about: new output, the end, or `abort`. */
  changed(abort: AbortSignal): Promise<void> {
    if (this.#done || abort.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const wake = () => {
        abort.removeEventListener('abort', wake)
        resolve()
      }
      this.#waiters.push(wake)
      abort.addEventListener('abort', wake, { once: true })
    })
  }

  /** A reader could not write: stop reading the pipes until it can (see the header). */
  block(): () => void {
    if (this.#blocked++ === 0 && !this.#done) this.#pipes((s) => s.pause())
    let released = false
    return () => {
      if (released) return
      released = true
      if (--this.#blocked === 0) this.#pipes((s) => s.resume())
    }
  }

  /** Calls `fn` once the process ended (at once when it has). */
  onDone(fn: () => void): void {
    if (this.#done) fn()
    else this.#exitListeners.push(fn)
  }

  signal(name: ProcessSignal): void {
    const n = os.constants.signals[name]
    if (this.#control) {
      // The terminal's foreground job is the one a person at the keyboard would signal.
      this.#control.write(`signal ${n}\n`)
      return
    }
    try {
      // rds-exec calls setsid(), so the pid is also the process group id.
      process.kill(-this.pid, n)
    } catch {
      // Just started, rds-exec has not made its group yet: the process itself.
      try {
        process.kill(this.pid, n)
      } catch {}
    }
  }

  resize(size: PtySize): boolean {
    if (!this.#control) return false
    this.#control.write(`resize ${size.cols} ${size.rows}\n`)
    return true
  }

  /** The process group and everything in its cgroup (also what left the group). */
  kill(): void {
    // Once exited its pid is free for reuse: only the cgroup still names what it left behind.
    if (this.#exited) this.#proc.killCgroup()
    else this.#proc.killAll()
  }

  #pipes(fn: (s: NodeJS.ReadableStream) => void): void {
    for (const s of [this.#proc.child.stdout, this.#proc.child.stderr]) if (s && !s.destroyed) fn(s)
  }

  #read(stream: OutputStream): void {
    const pipe = this.#proc.child[stream]!
    pipe.on('data', (c: Buffer) => {
      if (this.#done) return // a leftover background child after the end: drained, not kept
      this.#lastData = performance.now()
      this.ring.append(stream, c)
      this.#wake()
    })
    pipe.on('error', () => {})
    pipe.once('close', () => {
      if (--this.#openPipes === 0) {
        this.#proc.release()
        if (this.#exited) this.#finish()
      }
    })
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    clearTimeout(this.#timer)
    this.#exited = true
    this.endedAt = new Date()
    this.exitCode = this.timedOut ? -1 : (code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : -1))
    this.#control?.end()
    if (this.#openPipes === 0) return this.#finish()
    // Background children may hold the pipes open: wait for the output to go quiet, not for EOF.
    // The check runs after the event loop's I/O phase (setImmediate), so output already waiting in
    // a pipe when the timer fires (a busy loop) is read first and counts as not quiet.
    const wait = () => {
      this.#grace = setTimeout(() => {
        const firedAt = performance.now()
        setImmediate(() => {
          const quiet = this.#blocked === 0 && this.#lastData < firedAt - QUIET_AFTER_EXIT_MS / 2 && !this.#done
          if (quiet) this.#finish()
          else if (!this.#done) wait()
        })
      }, QUIET_AFTER_EXIT_MS)
    }
    wait()
  }

  #finish(): void {
    if (this.#done) return
    this.#done = true
    clearTimeout(this.#grace)
    // Leftover writers are drained (discarding) so they do not die of SIGPIPE.
    this.#pipes((s) => s.resume())
    this.#wake()
    for (const fn of this.#exitListeners.splice(0)) fn()
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w()
  }
}
