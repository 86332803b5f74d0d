// One reader of a process's output: replays the ring from the reader's offsets and, when it
// follows, waits for more until the process ended; writes NDJSON output events with offsets.
// When the response cannot take more (not drained), the process's pipes are not read until it
// can: the ring is never outrun by a follower, and nothing but the ring is buffered for it.
import type { Writable } from 'node:stream'
import { OutputChunker, type OutputChunkEvent, type OutputEvent, type OutputStream } from '@rds/protocol'
import type { BackgroundProcess } from './background-process.ts'
import type { Cursors } from './output-ring.ts'

export interface ReadOptions {
  since: number
  stderrSince: number
  follow: boolean
}

export async function streamOutput(p: BackgroundProcess, out: Writable, opts: ReadOptions, abort: AbortSignal): Promise<void> {
  p.readers++
  try {
    await read(p, out, opts, abort)
  } finally {
    p.readers--
  }
}

async function read(p: BackgroundProcess, out: Writable, opts: ReadOptions, abort: AbortSignal): Promise<void> {
  const cursors: Cursors = { stdout: opts.since, stderr: opts.stderrSince }
  const chunkers: Record<OutputStream, OutputChunker> = { stdout: new OutputChunker('stdout', cursors.stdout), stderr: new OutputChunker('stderr', cursors.stderr) }
  /** Bytes skipped on a stream that no event has reported yet. */
  const pendingSkip: Record<OutputStream, number> = { stdout: 0, stderr: 0 }

  const write = async (events: OutputEvent[]): Promise<void> => {
    if (!events.length || abort.aborted) return
    if (out.write(events.map((e) => `${JSON.stringify(e)}\n`).join(''))) return
    const release = p.block()
    try {
      await writable(out, abort)
    } finally {
      release()
    }
  }

  const chunk = (stream: OutputStream, events: OutputChunkEvent[]): OutputChunkEvent[] => {
    if (events.length && pendingSkip[stream]) {
      events[0]!.skipped = pendingSkip[stream]
      pendingSkip[stream] = 0
    }
    return events
  }

  while (!abort.aborted) {
    // Read the state before the ring: output that arrives in between is read on the next turn.
    const ended = p.done
    const read = p.ring.next(cursors)
    if (read) {
      const { stream } = read
      if (read.skipped > 0) {
        // The bytes before the gap never complete a character now: out as they are, then restart.
        const flushed = chunk(stream, chunkers[stream].flush(true))
        pendingSkip[stream] += read.skipped
        chunkers[stream] = new OutputChunker(stream, read.offset)
        await write(flushed)
      }
      cursors[stream] = read.offset + read.bytes.length
      await write(chunk(stream, chunkers[stream].push(read.bytes, true)))
      continue
    }
    if (ended) {
      const tail = [...chunk('stdout', chunkers.stdout.flush(true)), ...chunk('stderr', chunkers.stderr.flush(true))]
      await write([...tail, { type: 'exit', exitCode: p.exitCode ?? -1, timedOut: p.timedOut, durationMs: p.durationMs }])
      return
    }
    if (!opts.follow) return
    await p.changed(abort)
  }
}

/** Resolves when `out` drained, closed, or the reader was aborted. */
function writable(out: Writable, abort: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done)
      out.off('close', done)
      abort.removeEventListener('abort', done)
      resolve()
    }
    if (abort.aborted || out.destroyed) return resolve()
    out.on('drain', done)
    out.on('close', done)
    abort.addEventListener('abort', done)
  })
}
