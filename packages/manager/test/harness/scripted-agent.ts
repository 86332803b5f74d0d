// A stand-in for a guest agent that answers as a test scripts it: for faults no real agent makes
// (hostile replies, another protocol version, malformed bridge frames) and for the fake VMM's
// guests (test/harness/fake-vmm.ts). It listens on a Unix socket as QEMU does for a VM's port
// and runs the guest side of the channel resync with the agent's own code, so the manager's
// real clients talk to it exactly as to a VM.
import fs from 'node:fs'
import http2 from 'node:http2'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { AGENT_PROTOCOL_VERSION, BRIDGE_PREFACE } from '@rds/protocol'
import { awaitPreface } from '../../../agent/src/transport/resync.ts'

export interface ScriptedChannel {
  socketPath: string
  close(): void
}

/**
 * Listens on `socketPath`; `onSession` gets each connection once the resync saw `preface`.
 * `answersResync` is asked per connection: false, and the resync is never answered (a guest
 * whose agent never comes up).
 */
async function listenAt(socketPath: string, onSession: (sock: net.Socket) => void, o: { preface?: Buffer; answersResync?: () => boolean } = {}) {
  const open = new Set<net.Socket>()
  const server = net.createServer((sock) => {
    open.add(sock)
    sock.on('close', () => open.delete(sock))
    sock.on('error', () => sock.destroy())
    if (o.answersResync?.() === false) return
    awaitPreface(sock, onSession, o.preface)
  })
  fs.rmSync(socketPath, { force: true })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(socketPath, resolve)
  })
  return {
    /** Stops listening and drops every connection, as a guest that is gone. */
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of open) c.destroy()
        server.close(() => resolve())
      }),
  }
}

/** Listens on a fresh socket of its own (removed on close). */
async function listen(onSession: (sock: net.Socket) => void, preface?: Buffer): Promise<ScriptedChannel> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-scripted-'))
  const socketPath = path.join(dir, 'channel.sock')
  const channel = await listenAt(socketPath, onSession, { preface })
  return {
    socketPath,
    close() {
      void channel.close()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Answers one request: respond on `stream`, or never (a silent agent). */
export type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void

/** An HTTP/2 agent on a given socket path (a fake VM's control port), streams handed over raw. */
export async function listenScriptedAgent(socketPath: string, o: { onStream: StreamHandler; answersResync?: () => boolean }): Promise<{ close(): Promise<void> }> {
  const h2 = http2.createServer()
  h2.on('stream', (stream, headers) => {
    // A host that gives up on a request resets its stream; that is no error of the agent.
    stream.on('error', () => {})
    o.onStream(stream, headers)
  })
  return listenAt(socketPath, (sock) => h2.emit('connection', sock), { answersResync: o.answersResync })
}
export type ScriptedAgent = Awaited<ReturnType<typeof listenScriptedAgent>>

/** One request as the script sees it: JSON bodies are parsed, others are left unread. */
export interface ScriptedRequest {
  method: string
  path: string
  body: unknown
}

export type AgentScript = (req: ScriptedRequest, stream: http2.ServerHttp2Stream) => void

/** Answers with `status` and, when given, a JSON body. */
export function answer(stream: http2.ServerHttp2Stream, status: number, body?: unknown): void {
  if (body === undefined) return void stream.respond({ ':status': status }, { endStream: true })
  stream.respond({ ':status': status, 'content-type': 'application/json' })
  stream.end(JSON.stringify(body))
}

export const identity = (protocolVersion: unknown = AGENT_PROTOCOL_VERSION) => ({ agentVersion: 'scripted', protocolVersion })

/** A control channel answering over HTTP/2 as `script` says. */
export function scriptedAgent(script: AgentScript): Promise<ScriptedChannel> {
  return listen((sock) => {
    const h2 = http2.createServer()
    h2.on('stream', (stream, headers) => {
      stream.on('error', () => {})
      const req = { method: String(headers[':method']), path: String(headers[':path']), body: undefined as unknown }
      if (headers['content-type'] !== 'application/json') return script(req, stream)
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => script({ ...req, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }, stream))
    })
    h2.emit('connection', sock)
  })
}

/** A bridge channel: `onConnect` gets the socket after the bridge preface, as the agent's relay does. */
export function scriptedBridge(onConnect: (sock: net.Socket) => void): Promise<ScriptedChannel> {
  return listen((sock) => {
    onConnect(sock)
    sock.resume()
  }, Buffer.from(BRIDGE_PREFACE))
}
