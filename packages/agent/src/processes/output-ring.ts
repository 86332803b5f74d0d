// The replay buffer of a background process: the last `capBytes` of each output stream, kept as
// the pieces they were read in, each with its byte offset in its stream and a sequence number
// shared by both streams, so a reader replays stdout and stderr in the order they arrived.
// Readers pull from it with their own cursors (a reader that fell behind what is kept skips
// ahead and is told how much it missed); the ring itself never grows past its bounds.
import type { OutputStream } from '@rds/protocol'

interface Piece {
  seq: number
  offset: number
  bytes: Buffer
}

/** Small reads of the same stream in a row are merged up to this size, so tiny writes cost no piece each. */
const MERGE_BELOW = 16 * 1024
/** Pieces kept per stream at most, whatever their size (bounds the bookkeeping of 1-byte writes). */
const MAX_PIECES = 16 * 1024
/** Largest piece a reader is handed at once (one event on the wire). */
export const MAX_READ_BYTES = 64 * 1024

class StreamRing {
  readonly #cap: number
  #pieces: Piece[] = []
  #head = 0
  #kept = 0
  /** Bytes written to this stream since the start: the offset of the next byte. */
  end = 0

  constructor(capBytes: number) {
    this.#cap = capBytes
  }

  /** Offset of the oldest byte still kept. */
  get start(): number {
    return this.end - this.#kept
  }

  append(seq: number, bytes: Buffer, mergeWithLast: boolean): void {
    const last = this.#pieces.length > this.#head ? this.#pieces[this.#pieces.length - 1]! : undefined
    if (mergeWithLast && last && last.bytes.length < MERGE_BELOW) last.bytes = Buffer.concat([last.bytes, bytes])
    else this.#pieces.push({ seq, offset: this.end, bytes })
    this.end += bytes.length
    this.#kept += bytes.length
    this.#evict()
  }

  #evict(): void {
    while (this.#kept > this.#cap || this.#pieces.length - this.#head > MAX_PIECES) {
      const oldest = this.#pieces[this.#head]!
      const excess = this.#kept - this.#cap
      if (excess > 0 && excess < oldest.bytes.length && this.#pieces.length - this.#head <= MAX_PIECES) {
        // Keep exactly capBytes: trim the oldest piece instead of dropping it whole.
        oldest.bytes = oldest.bytes.subarray(excess)
        oldest.offset += excess
        this.#kept -= excess
        break
      }
      this.#head++
      this.#kept -= oldest.bytes.length
    }
    if (this.#head > 1024 && this.#head * 2 > this.#pieces.length) {
      this.#pieces = this.#pieces.slice(this.#head)
      this.#head = 0
    }
  }

  /** The first kept piece holding a byte at or after `cursor`, or undefined when the reader is at the end. */
  pieceAfter(cursor: number): Piece | undefined {
    if (cursor >= this.end) return undefined
    let lo = this.#head
    let hi = this.#pieces.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      const p = this.#pieces[mid]!
      if (p.offset + p.bytes.length <= cursor) lo = mid + 1
      else hi = mid
    }
    return this.#pieces[lo]
  }
}

export interface RingRead {
  stream: OutputStream
  /** Offset of `bytes` in its stream. */
  offset: number
  bytes: Buffer
  /** Bytes between the reader's cursor and `offset` that are no longer kept. */
  skipped: number
}

export type Cursors = Record<OutputStream, number>

export class OutputRing {
  readonly #streams: Record<OutputStream, StreamRing>
  #seq = 0
  #lastStream: OutputStream | undefined

  constructor(capBytesPerStream: number) {
    this.#streams = { stdout: new StreamRing(capBytesPerStream), stderr: new StreamRing(capBytesPerStream) }
  }

  append(stream: OutputStream, bytes: Buffer): void {
    if (!bytes.length) return
    this.#streams[stream].append(++this.#seq, bytes, this.#lastStream === stream)
    this.#lastStream = stream
  }

  /** Bytes written to the stream so far. */
  end(stream: OutputStream): number {
    return this.#streams[stream].end
  }

  start(stream: OutputStream): number {
    return this.#streams[stream].start
  }

  /**
   * What a reader at `cursors` gets next: the earliest-arrived bytes past its cursor in either
   * stream (at most MAX_READ_BYTES), or undefined when it has read everything. The caller
   * advances its cursor to offset + bytes.length.
   */
  next(cursors: Cursors): RingRead | undefined {
    let best: { stream: OutputStream; piece: Piece } | undefined
    for (const stream of ['stdout', 'stderr'] as const) {
      const piece = this.#streams[stream].pieceAfter(cursors[stream])
      if (piece && (!best || piece.seq < best.piece.seq)) best = { stream, piece }
    }
    if (!best) return undefined
    const { stream, piece } = best
    const from = Math.max(cursors[stream], piece.offset)
    const bytes = piece.bytes.subarray(from - piece.offset, from - piece.offset + MAX_READ_BYTES)
    return { stream, offset: from, bytes, skipped: from - cursors[stream] }
  }
}
