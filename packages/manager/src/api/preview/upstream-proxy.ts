// The proxy core: one HTTP request, or one upgrade (WebSocket), to a target the caller already
// chose and authorised. It knows nothing of preview hosts, tokens or VMs, so any front door (the
// preview host name today, E2B's sandbox headers later) reuses it. node:http and plain pipes: the
// body streams both ways with the sockets' own backpressure (nothing is buffered beyond them), and
// every header goes through forwarded-headers.ts, which a generic proxy library would only let us
// reach through its events.
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { UpstreamTarget } from '../../services/previews/previews.ts'
import { downstreamResponseHeaders, upstreamRequestHeaders, type ClientInfo } from './forwarded-headers.ts'

/** A guest that does not answer a SYN (a firewall in the guest, a wedged VM) must not hold the client forever. */
const CONNECT_TIMEOUT_MS = 10_000

export interface ForwardOptions {
  target: UpstreamTarget
  /** Path and query sent to the guest (the front door may have removed its own parameters). */
  path: string
  client: ClientInfo
  /** The browser's host: Set-Cookie may name it and nothing wider. */
  cookieHost: string
  /** Called when nothing was sent to the client yet and the guest could not be reached. */
  unreachable: (reason: string) => void
}

// Connections to guests are reused between requests; the pool is keyed by address and port.
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 16, timeout: 60_000 })

function connectDeadline(req: http.ClientRequest): void {
  req.on('socket', (socket) => {
    if (!socket.connecting) return
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS)
    socket.once('connect', () => clearTimeout(timer))
    socket.once('close', () => clearTimeout(timer))
  })
}

const reasonOf = (err: NodeJS.ErrnoException) => (err.code === 'ECONNREFUSED' ? 'connection refused' : err.code === 'EHOSTUNREACH' ? 'host unreachable' : err.message)

/** The request to the guest's port for a client's request (an upgrade keeps its own connection). */
function upstreamRequest(req: IncomingMessage, o: ForwardOptions, upgrade: boolean, via: http.Agent | false): http.ClientRequest {
  const { host, port, localAddress } = o.target
  return http.request({ host, port, localAddress, method: req.method, path: o.path, headers: upstreamRequestHeaders(req.headers, o.client, upgrade), agent: via })
}

export function forwardHttp(req: IncomingMessage, res: ServerResponse, o: ForwardOptions): void {
  const up = upstreamRequest(req, o, false, agent)
  connectDeadline(up)
  up.on('response', (ur) => {
    res.writeHead(ur.statusCode ?? 502, ur.statusMessage, downstreamResponseHeaders(ur.headers, o.cookieHost, false))
    ur.pipe(res)
    ur.on('error', () => res.destroy())
  })
  up.on('error', (err: NodeJS.ErrnoException) => {
    if (!res.headersSent) o.unreachable(reasonOf(err))
    else res.destroy()
  })
  // A client that goes away ends the guest request too (a long download or a stream is not left running).
  res.on('close', () => {
    if (!res.writableFinished) up.destroy()
  })
  req.pipe(up)
}

/** Writes a whole HTTP response onto a raw socket (an upgrade that did not happen). */
export function writeRawResponse(socket: Duplex, status: number, headers: OutgoingHttpHeaders, body?: string | Buffer): void {
  const lines = [`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`]
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue
    for (const one of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${String(one).replace(/[\r\n]/g, '')}`)
  }
  socket.write(`${lines.join('\r\n')}\r\n\r\n`)
  if (body !== undefined) socket.write(body)
}

export function forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, o: ForwardOptions): void {
  const up = upstreamRequest(req, o, true, false)
  connectDeadline(up)
  let answered = false
  socket.on('error', () => up.destroy())
  up.on('upgrade', (ur, upSocket, upHead) => {
    answered = true
    upSocket.on('error', () => socket.destroy())
    socket.on('error', () => upSocket.destroy())
    socket.on('close', () => upSocket.destroy())
    upSocket.on('close', () => socket.destroy())
    writeRawResponse(socket, 101, downstreamResponseHeaders(ur.headers, o.cookieHost, true))
    if (upHead.length) socket.write(upHead)
    if (head.length) upSocket.write(head)
    upSocket.setNoDelay(true)
    upSocket.pipe(socket)
    socket.pipe(upSocket)
  })
  up.on('response', (ur) => {
    // The guest answered without switching: its answer goes back as it is, then the connection closes.
    answered = true
    const headers = downstreamResponseHeaders(ur.headers, o.cookieHost, false)
    headers.connection = 'close'
    delete headers['content-length']
    writeRawResponse(socket, ur.statusCode ?? 502, headers)
    ur.pipe(socket)
  })
  up.on('error', (err: NodeJS.ErrnoException) => {
    if (!answered) o.unreachable(reasonOf(err))
    else socket.destroy()
  })
  up.end()
}
