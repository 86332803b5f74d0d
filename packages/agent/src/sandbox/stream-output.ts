// A user process's output written as it happens: one OutputEvent per line (NDJSON) on the reply
// stream, then exactly one exit (or error) event. Flow control runs end to end: when the reply
// cannot take more (HTTP/2 window used up because the manager, or its client, reads slowly), the
// child's pipes are no longer read, so the child blocks on its full pipe: it is slowed, never
// buffered here. A reply stream that closes before the exit event (the manager cancelled it:
// its client is gone) kills the command's whole tree at once.
import type { Http2ServerResponse } from 'node:http2'
import os from 'node:os'
import type { Readable } from 'node:stream'
import { jsonLine, NDJSON, OutputChunker, type ExitEvent, type OutputEvent, type OutputStream } from '@rds/protocol'
import { PIPE_DRAIN_GRACE_MS, PIPE_DRAIN_MAX_MS } from '../config.ts'
import { CappedBuffer, type UserProcess } from './spawn.ts'

export interface StreamOptions {
  timeoutMs: number
  /** Per stream: bytes beyond it are read and dropped, and the exit event says so (*Truncated). */
  maxOutputBytes: number
  /** Extra readable collected whole with its own cap (run's result pipe), handed to `finish`. */
  side?: { stream: Readable; maxBytes: number }
  /** Applied to each text chunk (Deno's colour escapes are stripped). */
  transform?: (text: string) => string
  /** Fields the exit event gets from the side channel (run's result / error). */
  finish?: (side: { side: Buffer | undefined; sideTruncated: boolean }) => Pick<ExitEvent, 'result' | 'error'>
}

interface Output {
  name: OutputStream
  stream: Readable
  chunker: OutputChunker
  sent: number
  truncated: boolean
  /** Reads not yet turned into an event: the reads of one turn of the event loop go out as one. */
  pending: Buffer[]
  pendingBytes: number
}

/**
 * How much the reply may hold before the pipes are no longer read. A little: without it every
 * event would stop the reading until the channel took it (the HTTP/2 stream's own high-water
 * mark is 16 KiB), and reading and sending could never overlap.
 */
const MAX_UNSENT_BYTES = 256 * 1024
/** Largest event: reads are joined up to this (pipe reads are often a few KiB each). */
const MAX_EVENT_BYTES = 64 * 1024

/** Resolves once the last event is written (or the reply closed early and the command was killed). */
export function streamOutput(proc: UserProcess, res: Http2ServerResponse, opts: StreamOptions): Promise<void> {
  const started = performance.now()
  const { child } = proc
  const outputs: Output[] = (['stdout', 'stderr'] as const).map((name) => ({ name, stream: child[name]!, chunker: new OutputChunker(name), sent: 0, truncated: false, pending: [], pendingBytes: 0 }))
  const side = opts.side ? new CappedBuffer(opts.side.maxBytes) : undefined
  const readables = [...outputs.map((o) => o.stream), ...(opts.side ? [opts.side.stream] : [])]
  // The status goes out now: the manager answers its client as soon as the command runs.
  res.writeHead(200, { 'content-type': NDJSON })

  return new Promise((resolve) => {
    let done = false
    let timedOut = false
    let exitCode: number | undefined
    let spawnError: string | undefined
    let open = readables.length
    let waitingDrain = false
    let graceTimer: NodeJS.Timeout | undefined

    const send = (event: OutputEvent): void => {
      if (res.write(jsonLine(event)) || waitingDrain || res.stream.writableLength < MAX_UNSENT_BYTES) return
      waitingDrain = true
      for (const o of outputs) o.stream.pause()
      res.once('drain', () => {
        waitingDrain = false
        if (!done) for (const o of outputs) o.stream.resume()
      })
    }

    const end = (): void => {
      done = true
      clearTimeout(timer)
      clearTimeout(graceTimer)
      // Pipes a background job keeps open are drained unread, so it does not die of SIGPIPE.
      for (const r of readables) r.resume()
      if (open === 0) proc.release()
      resolve()
    }

    const emit = (o: Output): void => {
      if (o.pendingBytes === 0) return
      const bytes = o.pending.length === 1 ? o.pending[0]! : Buffer.concat(o.pending)
      o.pending = []
      o.pendingBytes = 0
      for (const e of o.chunker.push(bytes)) {
        if (opts.transform && e.data !== undefined) e.data = opts.transform(e.data)
        send(e)
      }
    }
    let emitScheduled = false
    const emitSoon = (): void => {
      if (emitScheduled) return
      emitScheduled = true
      setImmediate(() => {
        emitScheduled = false
        if (!done) for (const o of outputs) emit(o)
      })
    }

    const finish = (): void => {
      if (done) return
      for (const o of outputs) emit(o)
      for (const o of outputs) for (const e of o.chunker.flush()) send(e)
      if (spawnError !== undefined) {
        send({ type: 'error', code: 'internal', message: `the command could not be started: ${spawnError}` })
      } else {
        const exit: ExitEvent = { type: 'exit', exitCode: timedOut ? -1 : (exitCode ?? -1), timedOut, durationMs: Math.round(performance.now() - started) }
        for (const o of outputs) if (o.truncated) exit[`${o.name}Truncated`] = true
        Object.assign(exit, opts.finish?.({ side: side?.toBuffer(), sideTruncated: side?.truncated ?? false }))
        send(exit)
      }
      res.end()
      end()
    }

    // After the exit, the pipes are read to their end; pipes that background jobs keep open end
    // the answer once they were idle for a moment. Idle means read and quiet: not paused for a
    // slow reader (the exited command's last output may still sit in the pipe), and no data in
    // the last moment. The check runs after the event loop polled the pipes (setImmediate), so a
    // busy loop that fires the timer late has read what was waiting first.
    let lastDataAt = 0
    let exitedAt = 0
    const armGrace = (): void => {
      clearTimeout(graceTimer)
      graceTimer = setTimeout(() => setImmediate(() => {
        if (done) return
        if (waitingDrain) return void res.once('drain', armGrace)
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

    for (const o of outputs) {
      o.stream.on('data', (c: Buffer) => {
        lastDataAt = performance.now()
        if (done || o.truncated) return
        const room = opts.maxOutputBytes - o.sent
        if (c.length > room) {
          o.truncated = true
          c = c.subarray(0, room)
        }
        o.sent += c.length
        o.pending.push(c)
        o.pendingBytes += c.length
        if (o.pendingBytes >= MAX_EVENT_BYTES) emit(o)
        else emitSoon()
      })
    }
    if (opts.side && side) opts.side.stream.on('data', (c: Buffer) => side.push(c))
    for (const r of readables) {
      r.once('close', () => {
        open--
        if (done && open === 0) proc.release()
        else maybeFinish()
      })
      r.on('error', () => {})
    }

    const timer = setTimeout(() => {
      timedOut = true
      proc.killAll()
    }, opts.timeoutMs)

    // The manager reset the stream (its client left) before the end: nobody wants the command now.
    res.once('close', () => {
      if (done) return
      proc.killAll()
      end()
    })

    child.once('error', (e) => {
      if (exitCode !== undefined) return
      spawnError = e.message
      for (const r of readables) r.destroy()
      maybeFinish()
    })
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : -1)
      maybeFinish()
    })
  })
}
