// Warm runtimes: per runtime, at most one Deno or Node process started ahead of a call and
// waiting in its wrapper (warmWrapperSource) for one program. A call that fits (warm-fit.ts) takes
// it, sends it the program and the call's env over its go pipe, and from then on it is that
// call's process: collected, timed and killed exactly like a cold one. It is never given a
// second program; the next one is started when the call that used one is over (so it does not
// take the CPU from that call).
//
// A runtime is only started after a call of its runtime asked for one (never at boot, so idle
// VMs and image seeds do not pay its memory), and every warm runtime is discarded at /init: after
// a snapshot restore it would be a copy shared by every clone, RNG state included.
import fs from 'node:fs'
import path from 'node:path'
import type net from 'node:net'
import { randomUUID } from 'node:crypto'
import type { AgentConfig } from '../config.ts'
import { log } from '../log.ts'
import { spawnAsUser, type UserProcess, type UserSandbox } from '../sandbox/spawn.ts'
import { makeFifo } from './fifo.ts'
import { createResultPipe } from './result-pipe.ts'
import { runtimeArgv, runtimeEnv } from './runtime-launch.ts'
import type { WarmShape } from './warm-fit.ts'
import { warmWrapperSource, type Runtime } from './wrappers.ts'

/** What a call gets: the process and its run dir, ready for `start`. */
export interface WarmRun {
  proc: UserProcess
  resultPipe: net.Socket
  runDir: string
  /** Sends the program; call once. */
  start(program: { target: string; env: Map<string, string> }): void
  /** Closes the agent's end of the go pipe; with the run dir, once the call is over. */
  close(): void
}

interface Idle extends WarmRun {
  shape: WarmShape
}

/** Longer go messages (a huge env list) take the cold path: a FIFO buffer holds 64 KiB. */
export const MAX_GO_MESSAGE_BYTES = 60 * 1024
/** Runtimes that die before use this many times in a row are no longer started (until /init). */
const MAX_EARLY_DEATHS = 3
const RESTART_DELAY_MS = 200

export class WarmRuntimes {
  readonly #sandbox: UserSandbox
  readonly #config: AgentConfig
  readonly #runsDir: string
  readonly #idle = new Map<Runtime, Idle>()
  readonly #starting = new Set<Runtime>()
  readonly #deaths = new Map<Runtime, number>()
  /** The shape the latest call of each runtime asked for: what a runtime still starting must have. */
  readonly #wanted = new Map<Runtime, WarmShape>()
  /** Bumped by discardAll: runtimes still starting from before it are thrown away when ready. */
  #generation = 0

  constructor(sandbox: UserSandbox, runsDir: string) {
    this.#sandbox = sandbox
    this.#config = sandbox.config
    this.#runsDir = runsDir
  }

  /** The idle runtime for this shape, now owned by the caller; undefined: start cold. */
  take(shape: WarmShape): WarmRun | undefined {
    const idle = this.#idle.get(shape.runtime)
    if (!idle) return undefined
    this.#idle.delete(shape.runtime)
    if (idle.shape.key !== shape.key || idle.proc.child.exitCode !== null || idle.proc.child.signalCode !== null) {
      // Another shape is now the usual one (e.g. the VM's network policy changed): replace it.
      discard(idle)
      return undefined
    }
    this.#deaths.set(shape.runtime, 0)
    return idle
  }

  /** Starts a runtime of this shape in the background unless one is idle or starting. */
  refill(shape: WarmShape): void {
    const rt = shape.runtime
    this.#wanted.set(rt, shape)
    const idle = this.#idle.get(rt)
    if (idle && idle.shape.key !== shape.key) {
      this.#idle.delete(rt)
      discard(idle)
    }
    if (this.#idle.has(rt) || this.#starting.has(rt) || (this.#deaths.get(rt) ?? 0) >= MAX_EARLY_DEATHS) return
    this.#starting.add(rt)
    const generation = this.#generation
    this.#start(shape).then(
      (idle) => {
        this.#starting.delete(rt)
        if (generation !== this.#generation || this.#idle.has(rt)) return discard(idle)
        const wanted = this.#wanted.get(rt)
        if (wanted && wanted.key !== shape.key) {
          // Calls asked for another shape while this one started.
          discard(idle)
          return this.refill(wanted)
        }
        this.#idle.set(rt, idle)
        idle.proc.child.once('exit', () => {
          if (this.#idle.get(rt) !== idle) return
          // Died unused (crashed, or killed by the user's own processes): replace it.
          this.#idle.delete(rt)
          discard(idle)
          this.#deaths.set(rt, (this.#deaths.get(rt) ?? 0) + 1)
          setTimeout(() => this.refill(shape), RESTART_DELAY_MS).unref()
        })
      },
      (err: Error) => {
        this.#starting.delete(rt)
        this.#deaths.set(rt, (this.#deaths.get(rt) ?? 0) + 1)
        log.warn(`warm ${rt} runtime could not start: ${err.message}`)
      },
    )
  }

  /** Kills every idle runtime (and any still starting); the next calls start cold and refill. */
  discardAll(): void {
    this.#generation++
    for (const idle of this.#idle.values()) discard(idle)
    this.#idle.clear()
    this.#deaths.clear()
    this.#wanted.clear()
  }

  async #start(shape: WarmShape): Promise<Idle> {
    const config = this.#config
    const runDir = path.join(this.#runsDir, randomUUID())
    fs.mkdirSync(runDir, { mode: 0o755 })
    let goFd: number | undefined
    try {
      fs.chmodSync(runDir, 0o755)
      // Root's, readable by the user: only the agent can write a program into it.
      const goPipe = path.join(runDir, 'go.fifo')
      await makeFifo(config.mkfifo, goPipe, '0644')
      // Read+write: never blocks, and keeps a writer so the runtime's open returns at once.
      goFd = fs.openSync(goPipe, fs.constants.O_RDWR)
      const wrapper = path.join(runDir, 'wrapper.mjs')
      fs.writeFileSync(wrapper, warmWrapperSource(shape.runtime, goPipe), { mode: 0o644, flag: 'wx' })
      fs.chmodSync(wrapper, 0o644)
      const argv = runtimeArgv(config, { runtime: shape.runtime, allowNet: shape.allowNet, envKeys: shape.envKeys, flags: [], args: [] }, runDir, wrapper)
      const pipe = await createResultPipe(runDir, config.uid, config.gid, config.mkfifo)
      let proc: UserProcess
      try {
        proc = spawnAsUser(this.#sandbox, { argv, env: runtimeEnv(config, shape.runtime), cwd: config.workspace, fd3: pipe.writeFd })
      } finally {
        fs.closeSync(pipe.writeFd)
      }
      // Nobody collects it yet: a failed spawn must not be an unhandled 'error' event.
      proc.child.on('error', (err) => log.warn(`warm ${shape.runtime} runtime failed: ${err.message}`))
      const fd = goFd
      let closed = false
      return {
        shape,
        proc,
        resultPipe: pipe.reader,
        runDir,
        start({ target, env }) {
          const message = Buffer.from(`${JSON.stringify({ target, env: [...env] })}\n`)
          // The pipe is empty and the message fits its buffer: the write cannot block.
          fs.writeSync(fd, message)
        },
        close() {
          if (closed) return
          closed = true
          fs.closeSync(fd)
        },
      }
    } catch (e) {
      if (goFd !== undefined) fs.closeSync(goFd)
      fs.rmSync(runDir, { recursive: true, force: true })
      throw e
    }
  }
}

function discard(idle: Idle): void {
  idle.proc.killAll()
  idle.resultPipe.destroy()
  idle.proc.child.stdout?.destroy()
  idle.proc.child.stderr?.destroy()
  idle.close()
  const cleanup = () => {
    idle.proc.release()
    fs.rmSync(idle.runDir, { recursive: true, force: true })
  }
  if (idle.proc.child.exitCode !== null || idle.proc.child.signalCode !== null) cleanup()
  else idle.proc.child.once('exit', cleanup)
}
