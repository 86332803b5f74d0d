// The peer bridge's framing, used on both ends: one JSON document per line. A peer that sends a
// line longer than `max` bytes is misbehaving and its stream is ended.
import type net from 'node:net'
import { StringDecoder } from 'node:string_decoder'

export function readLines(sock: net.Socket, max: number, onLine: (line: string) => void, onEnd: () => void): void {
  let buf = ''
  const decoder = new StringDecoder('utf8')
  sock.on('data', (chunk: Buffer) => {
    buf += decoder.write(chunk)
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      onLine(line)
    }
    if (buf.length > max) sock.destroy()
  })
  sock.on('close', onEnd)
  sock.on('error', () => sock.destroy())
}
