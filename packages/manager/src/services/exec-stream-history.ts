// What the exec history keeps of a streamed exec/run: the same record as a blocking call's
// (historyOf masks secrets, then cuts each field), built from the events as they pass. Only
// the head of each stream is kept, with room beyond the history's cut so that a secret spanning
// the cut is still masked whole before the cut is made.
import { chunkBytes, type ExecResult, type OutputEvent, type RunResult } from '@rds/protocol'

export class StreamedCallRecord {
  readonly #keep: number
  readonly #kept = { stdout: [] as Buffer[], stderr: [] as Buffer[] }
  readonly #size = { stdout: 0, stderr: 0 }
  #last: OutputEvent | undefined

  /** `keepBytes`: per stream; at least the history's cut plus the longest secret worth masking. */
  constructor(keepBytes: number) {
    this.#keep = keepBytes
  }

  add(event: OutputEvent): void {
    if (event.type === 'stdout' || event.type === 'stderr') {
      const room = this.#keep - this.#size[event.type]
      if (room <= 0) return
      const bytes = chunkBytes(event).subarray(0, room)
      this.#kept[event.type].push(bytes)
      this.#size[event.type] += bytes.length
    } else this.#last = event
  }

  /** The call as the history stores it; `gone`: the client left before the last event. */
  result(durationMs: number, gone: boolean): ExecResult & Partial<RunResult> {
    const last = this.#last
    const text = (s: 'stdout' | 'stderr') => Buffer.concat(this.#kept[s]).toString('utf8')
    const out: ExecResult & Partial<RunResult> = {
      exitCode: last?.type === 'exit' ? last.exitCode : -1,
      stdout: text('stdout'),
      stderr: text('stderr'),
      timedOut: last?.type === 'exit' ? last.timedOut : false,
      stdoutTruncated: last?.type === 'exit' ? last.stdoutTruncated === true : false,
      stderrTruncated: last?.type === 'exit' ? last.stderrTruncated === true : false,
      durationMs: last?.type === 'exit' ? last.durationMs : durationMs,
    }
    if (last?.type === 'exit') {
      if ('result' in last) out.result = last.result
      if ('error' in last) out.error = last.error
    } else if (last?.type === 'error') out.error = { code: last.code, message: last.message }
    else if (gone) out.error = { code: 'client_disconnected', message: 'the client left before the command ended; the command was killed' }
    return out
  }
}
