// Guest side of the resync handshake (protocol/handshake.ts). Every SYNC line is answered with
// an ACK; everything else is dropped until the HTTP/2 client preface. That discards stale bytes
// QEMU queued from an earlier session and a half-read old preface alike.
import type { Duplex } from 'node:stream'
import { HTTP2_PREFACE, SYNC_PREFIX, ackLine } from '@rds/protocol'

const SYNC = Buffer.from(SYNC_PREFIX)
const PREFACE = Buffer.from(HTTP2_PREFACE)
const TOKEN = /^[\x21-\x7e]{1,128}$/
/** Longest SYNC line we wait for; a longer one is garbage and dropped. */
const MAX_LINE = SYNC.length + 129

export interface ScanResult {
  /** ACK lines to send, in order. */
  acks: string[]
  /** Bytes from the preface on, once it was seen. */
  rest: Buffer | undefined
  /** Unconsumed tail to prepend to the next chunk. */
  pending: Buffer
}

/** Pure scanner, so the byte-level rules are testable without a socket. */
export function scanHandshake(buf: Buffer, preface: Buffer = PREFACE): ScanResult {
  const acks: string[] = []
  for (;;) {
    const s = buf.indexOf(SYNC)
    const p = buf.indexOf(preface)
    if (p >= 0 && (s < 0 || p < s)) return { acks, rest: buf.subarray(p), pending: Buffer.alloc(0) }
    if (s < 0) return { acks, rest: undefined, pending: keepPossiblePrefix(buf, preface) }
    const nl = buf.indexOf(0x0a, s + SYNC.length)
    if (nl < 0) {
      const tail = buf.subarray(s)
      return { acks, rest: undefined, pending: tail.length > MAX_LINE ? tail.subarray(1) : tail }
    }
    const token = syncTokenOf(buf.subarray(s, nl).toString('latin1'))
    if (token !== undefined) acks.push(ackLine(token))
    buf = buf.subarray(nl + 1)
  }
}

/** The token of a whole SYNC line (without its newline); undefined for any other line or a malformed token. */
export function syncTokenOf(line: string): string | undefined {
  if (!line.startsWith(SYNC_PREFIX)) return undefined
  const token = line.slice(SYNC_PREFIX.length)
  return TOKEN.test(token) ? token : undefined
}

/** The end of a chunk may hold the start of a SYNC line or of the preface. */
function keepPossiblePrefix(buf: Buffer, preface: Buffer): Buffer {
  const keep = Math.max(SYNC.length, preface.length) - 1
  for (let i = Math.max(0, buf.length - keep); i < buf.length; i++) {
    const tail = buf.subarray(i)
    if (SYNC.subarray(0, tail.length).equals(tail) || preface.subarray(0, tail.length).equals(tail)) return Buffer.from(tail)
  }
  return Buffer.alloc(0)
}

/**
 * Runs the handshake on a fresh socket and calls `onReady` with the preface unshifted back, so
 * an HTTP/2 server can take the socket over. The peer bridge uses its own preface (BRIDGE_PREFACE).
 */
export function awaitPreface<S extends Duplex>(sock: S, onReady: (sock: S) => void, preface: Buffer = PREFACE): void {
  let pending: Buffer = Buffer.alloc(0)
  const onData = (chunk: Buffer): void => {
    const r = scanHandshake(pending.length ? Buffer.concat([pending, chunk]) : chunk, preface)
    for (const a of r.acks) sock.write(a)
    pending = r.pending
    if (r.rest) {
      sock.off('data', onData)
      sock.pause()
      sock.unshift(r.rest)
      onReady(sock)
    }
  }
  sock.on('data', onData)
}
