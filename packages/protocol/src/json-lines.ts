// Line framing, the one implementation of it: one JSON document per line, on the peer bridge (both
// ends) and on the manager's QMP connection. A peer that sends a line longer than `max` bytes (or
// never ends one) is misbehaving and its stream is destroyed: at most `max` bytes of an unfinished
// line are ever held, counted in bytes, not characters.
import type net from 'node:net'

const NEWLINE = 0x0a

/** One frame on the wire. JSON text never holds a raw newline (it escapes them), so the line is the frame. */
export const jsonLine = (value: unknown): string => `${JSON.stringify(value)}\n`

export function readLines(sock: net.Socket, max: number, onLine: (line: string) => void, onEnd: () => void): void {
  let partial: Buffer[] = []
  let partialBytes = 0
  sock.on('data', (chunk: Buffer) => {
    let start = 0
    let nl: number
    while ((nl = chunk.indexOf(NEWLINE, start)) >= 0) {
      if (partialBytes + nl - start > max) return void sock.destroy()
      const tail = chunk.subarray(start, nl)
      const line = partialBytes > 0 ? Buffer.concat([...partial, tail]) : tail
      partial = []
      partialBytes = 0
      start = nl + 1
      onLine(line.toString('utf8'))
      if (sock.destroyed) return
    }
    if (start === chunk.length) return
    partialBytes += chunk.length - start
    if (partialBytes > max) return void sock.destroy()
    // A copy: a view would keep the whole chunk alive for a few bytes of it.
    partial.push(Buffer.from(chunk.subarray(start)))
  })
  sock.on('close', onEnd)
  sock.on('error', () => sock.destroy())
}
