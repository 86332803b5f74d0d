// A guest agent whose answers the test writes: the guest side of the control channel (the
// resync of protocol/handshake.ts, then an HTTP/2 server) on a Unix socket. The real
// AgentClient talks to it exactly as it talks to QEMU's socket of a VM's control port, so a
// test can script what no real guest can be made to do (oversize replies, silence, a crash).
import fs from 'node:fs'
import http2 from 'node:http2'
import net from 'node:net'
import { ACK_PREFIX, HTTP2_PREFACE, SYNC_PREFIX } from '@rds/protocol'

/** Answers one request: respond on `stream`, or never (a silent agent). */
export type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void

export interface ScriptedAgentOptions {
  onStream: StreamHandler
  /** Asked per connection; false: the resync is never answered (a guest whose agent never comes up). */
  answersResync?: () => boolean
}

export interface ScriptedAgent {
  /** Stops listening and drops every connection, as a guest that is gone. */
  close(): Promise<void>
}

/** The guest side of the channel resync: ACK every SYNC, drop bytes until the HTTP/2 preface. */
function acceptChannel(sock: net.Socket, onSession: (sock: net.Socket) => void): void {
  let seen = Buffer.alloc(0)
  const onData = (d: Buffer) => {
    seen = Buffer.concat([seen, d])
    let text = seen.toString('latin1')
    let at: number
    while ((at = text.indexOf(SYNC_PREFIX)) >= 0) {
      const end = text.indexOf('\n', at)
      if (end < 0) break
      sock.write(`${ACK_PREFIX}${text.slice(at + SYNC_PREFIX.length, end)}\n`)
      text = text.slice(end + 1)
    }
    const pre = text.indexOf(HTTP2_PREFACE)
    if (pre < 0) return void (seen = Buffer.from(text, 'latin1'))
    sock.off('data', onData)
    sock.pause()
    sock.unshift(Buffer.from(text.slice(pre), 'latin1'))
    onSession(sock)
  }
  sock.on('data', onData)
}

export async function listenScriptedAgent(socketPath: string, o: ScriptedAgentOptions): Promise<ScriptedAgent> {
  const h2 = http2.createServer()
  h2.on('stream', (stream, headers) => {
    // A host that gives up on a request resets its stream; that is no error of the agent.
    stream.on('error', () => {})
    o.onStream(stream, headers)
  })
  const connections = new Set<net.Socket>()
  const server = net.createServer((sock) => {
    connections.add(sock)
    sock.on('close', () => connections.delete(sock))
    sock.on('error', () => sock.destroy())
    if (o.answersResync?.() === false) return
    acceptChannel(sock, (ready) => h2.emit('connection', ready))
  })
  fs.rmSync(socketPath, { force: true })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(socketPath, resolve)
  })
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.destroy()
        server.close(() => resolve())
      }),
  }
}
