// A running command's output as a sequence of events, one JSON document per line (NDJSON). The
// same events travel on the agent channel (streamed exec, background processes) and out of the
// public API (`"stream": true`, a process's `/output`), so one schema serves both ends, the
// OpenAPI document and the clients. Output is UTF-8 text where it is valid UTF-8 and base64
// where it is not; a multi-byte character cut by a read boundary is carried to the next event
// instead of turning into two invalid halves (OutputChunker).
import { isUtf8 } from 'node:buffer'
import { Type, type Static } from 'typebox'

export const OutputStream = Type.Union([Type.Literal('stdout'), Type.Literal('stderr')])
export type OutputStream = Static<typeof OutputStream>

export const OutputChunkEvent = Type.Object(
  {
    type: OutputStream,
    /** The bytes as text, when they are valid UTF-8. */
    data: Type.Optional(Type.String()),
    /** The bytes in base64, when they are not valid UTF-8. Exactly one of data / dataBase64 is set. */
    dataBase64: Type.Optional(Type.String()),
    /** Byte offset of the chunk's first byte in its stream (background processes; resume with `since`). */
    offset: Type.Optional(Type.Integer({ minimum: 0 })),
    /**
     * Background processes: bytes of this stream right before `offset` that are not delivered
     * because the replay buffer no longer held them (a `since` older than what is kept, or a
     * reader that fell behind). Absent when nothing was skipped.
     */
    skipped: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
)
export type OutputChunkEvent = Static<typeof OutputChunkEvent>

export const ExitEvent = Type.Object(
  {
    type: Type.Literal('exit'),
    /** -1 on timeout, 128+n when killed by signal n. */
    exitCode: Type.Integer(),
    timedOut: Type.Boolean(),
    durationMs: Type.Number(),
    /** Streamed exec/run: set when the stream's output went over maxOutputBytes and the rest was dropped. */
    stdoutTruncated: Type.Optional(Type.Boolean()),
    stderrTruncated: Type.Optional(Type.Boolean()),
    /** run-ts / run-js: the value given to result.set(v), when set. */
    result: Type.Optional(Type.Unknown()),
    /** run-ts / run-js: the value given to result.error(e), or the uncaught error, serialized. */
    error: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false },
)
export type ExitEvent = Static<typeof ExitEvent>

/** The command could not run or its stream broke; always the last event when it comes. */
export const ErrorEvent = Type.Object(
  {
    type: Type.Literal('error'),
    code: Type.String(),
    message: Type.String(),
  },
  { additionalProperties: false },
)
export type ErrorEvent = Static<typeof ErrorEvent>

export const OutputEvent = Type.Union([OutputChunkEvent, ExitEvent, ErrorEvent])
export type OutputEvent = Static<typeof OutputEvent>

export const NDJSON = 'application/x-ndjson'

/** Longest run of bytes a UTF-8 character can leave unfinished at the end of a read (3 of 4). */
const MAX_CARRY = 3

/**
 * Turns one stream's reads into chunk events. Each event holds whole characters: the bytes of a
 * character cut at the end of a read are kept for the next one (at most 3 bytes). Bytes that are
 * not UTF-8 at all go out as base64, so nothing is ever replaced or lost.
 */
export class OutputChunker {
  readonly #stream: OutputStream
  #carry: Buffer = Buffer.alloc(0)
  /** Bytes handed out so far: the offset of the next event. */
  #offset: number

  constructor(stream: OutputStream, startOffset = 0) {
    this.#stream = stream
    this.#offset = startOffset
  }

  /** The events of one read (none when it only completed part of a character). */
  push(bytes: Buffer, withOffset = false): OutputChunkEvent[] {
    let buf = this.#carry.length ? Buffer.concat([this.#carry, bytes]) : bytes
    this.#carry = Buffer.alloc(0)
    const cut = incompleteTail(buf)
    if (cut > 0) {
      this.#carry = Buffer.from(buf.subarray(buf.length - cut))
      buf = buf.subarray(0, buf.length - cut)
    }
    return buf.length ? [this.#event(buf, withOffset)] : []
  }

  /** At the stream's end: whatever was carried, as base64 (it never became a character). */
  flush(withOffset = false): OutputChunkEvent[] {
    if (!this.#carry.length) return []
    const rest = this.#carry
    this.#carry = Buffer.alloc(0)
    return [this.#event(rest, withOffset)]
  }

  #event(buf: Buffer, withOffset: boolean): OutputChunkEvent {
    const event: OutputChunkEvent = isUtf8(buf) ? { type: this.#stream, data: buf.toString('utf8') } : { type: this.#stream, dataBase64: buf.toString('base64') }
    if (withOffset) event.offset = this.#offset
    this.#offset += buf.length
    return event
  }
}

/** The bytes an event carries. */
export function chunkBytes(event: OutputChunkEvent): Buffer {
  return event.dataBase64 !== undefined ? Buffer.from(event.dataBase64, 'base64') : Buffer.from(event.data ?? '', 'utf8')
}

/**
 * How many bytes at the end of `buf` start a character that the buffer does not finish: 0 when
 * it ends on a boundary (or with bytes that can never become a character, which go out as they are).
 */
function incompleteTail(buf: Buffer): number {
  for (let back = 1; back <= Math.min(MAX_CARRY, buf.length); back++) {
    const b = buf[buf.length - back]!
    if ((b & 0xc0) === 0x80) continue // a continuation byte: look further back for its lead
    const need = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 && b < 0xe0 ? 2 : 1
    return need > back ? back : 0
  }
  return 0
}
