// The manager's client of one VM's guest agent: a single long-lived HTTP/2 session over the
// control channel (QEMU serves one client per socket, so streams are multiplexed on it),
// re-established with a resync whenever it drops. Requests are made by route name from the
// protocol's table, and every reply is checked against it (reply-check.ts) before it is returned.
import http2 from 'node:http2'
import type net from 'node:net'
import type { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { AgentRoutes, BODY_BYTES_TRAILER, encodeQuery, type AgentCallName, type AgentDownloadName, type AgentEventStreamName, type AgentQuery, type AgentReply, type AgentRequest, type AgentUploadName } from '@rds/protocol'
import { AgentProtocolMismatchError, AgentReplyTooLargeError, AgentUnavailableError } from './faults.ts'
import { acceptReply, acceptUploaded, refusal } from './reply-check.ts'
import { connectAndResync } from './resync.ts'

const WINDOW = 4 * 1024 * 1024
/** A hostile agent may answer with any size; JSON replies are parsed whole, so they are capped. */
export const DEFAULT_REPLY_MAX_BYTES = 64 * 1024 * 1024
/** An error reply of a download or event stream is a short JSON document; more is not worth reading. */
const ERROR_BODY_MAX_BYTES = 64 * 1024

export interface AgentClientOptions {
  /** Largest JSON reply read from the agent (AGENT_REPLY_MAX_BYTES). */
  maxReplyBytes?: number
}

/**
 * One request of a JSON route, resolving to its checked reply. It rejects with a fault of
 * faults.ts: AgentRefusedError when the agent answered with its error, an AgentUnavailableError
 * (or a subclass: too large, invalid, other protocol) when there is no usable answer.
 */
export type AgentCall = <R extends AgentCallName>(route: R, body: AgentRequest<R>, timeoutMs: number) => Promise<AgentReply<R>>

interface RawReply {
  status: number
  body: unknown
}

export class AgentClient {
  private readonly socketPath: string
  private readonly onConnect: ((call: AgentCall) => Promise<void>) | undefined
  private session: http2.ClientHttp2Session | undefined
  private connecting: Promise<http2.ClientHttp2Session> | undefined
  private readonly maxReplyBytes: number
  private closed = false
  /** The current session's socket, and what the agent sent on the sockets before it. */
  private sock: net.Socket | undefined
  private heardBefore = 0

  /**
   * `onConnect` runs after every new session (first connect and each reconnect), before any other
   * request: it makes the session's first exchange (init), whose reply states the protocol version.
   */
  constructor(socketPath: string, onConnect?: (call: AgentCall) => Promise<void>, options: AgentClientOptions = {}) {
    this.socketPath = socketPath
    this.onConnect = onConnect
    this.maxReplyBytes = options.maxReplyBytes ?? DEFAULT_REPLY_MAX_BYTES
  }

  /** Connects, retrying until the deadline: during boot the agent is not up yet. */
  async waitReady(timeoutMs: number, isVmAlive: () => boolean): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let lastErr: unknown
    while (Date.now() < deadline) {
      if (!isVmAlive()) throw new AgentUnavailableError('VM process exited before its agent answered')
      try {
        await this.getSession(Math.min(2000, Math.max(200, deadline - Date.now())))
        return
      } catch (err) {
        // An agent of another protocol answers the same way every time: say so now, not at the deadline.
        if (err instanceof AgentProtocolMismatchError) throw err
        lastErr = err
        await sleep(50)
      }
    }
    throw new AgentUnavailableError(`agent did not answer within ${timeoutMs} ms (${(lastErr as Error)?.message ?? 'no reply'})`)
  }

  private getSession(resyncTimeoutMs = 3000): Promise<http2.ClientHttp2Session> {
    if (this.closed) return Promise.reject(new AgentUnavailableError('client closed'))
    if (this.session && !this.session.closed && !this.session.destroyed) return Promise.resolve(this.session)
    this.connecting ??= (async () => {
      try {
        const sock = await connectAndResync(this.socketPath, resyncTimeoutMs)
        this.sock = sock
        sock.once('close', () => {
          this.heardBefore += sock.bytesRead
          if (this.sock === sock) this.sock = undefined
        })
        const session = http2.connect('http://agent', {
          createConnection: () => sock,
          // Pushed streams would be bytes the guest makes us hold that no request asked for.
          settings: { initialWindowSize: WINDOW, enablePush: false },
        })
        await new Promise<void>((resolve, reject) => {
          session.once('connect', () => resolve())
          session.once('error', reject)
        })
        session.setLocalWindowSize(16 * WINDOW)
        session.on('error', () => {})
        session.once('close', () => {
          if (this.session === session) this.session = undefined
        })
        // Other callers wait on `connecting` until the hook is done: it always runs first.
        if (this.onConnect) {
          try {
            await this.onConnect((route, body, timeoutMs) => this.callOn(session, route, body, timeoutMs))
          } catch (err) {
            // A session left open would hold QEMU's single client slot against the next attempt.
            session.destroy()
            throw err
          }
        }
        this.session = session
        return session
      } finally {
        this.connecting = undefined
      }
    })()
    return this.connecting
  }

  /** The current session for a request; any failure to get one is the agent being unavailable. */
  private async usableSession(): Promise<http2.ClientHttp2Session> {
    try {
      return await this.getSession()
    } catch (err) {
      throw new AgentUnavailableError((err as Error).message)
    }
  }

  private async stream(method: string, path: string, headers: http2.OutgoingHttpHeaders = {}, options: http2.ClientSessionRequestOptions = {}): Promise<http2.ClientHttp2Stream> {
    return (await this.usableSession()).request({ ':method': method, ':path': path, ...headers }, options)
  }

  /** A request of a JSON route. `timeoutMs` bounds the whole exchange (the agent enforces run timeouts itself). */
  readonly call: AgentCall = async (route, body, timeoutMs) => this.callOn(await this.usableSession(), route, body, timeoutMs)

  private async callOn<R extends AgentCallName>(session: http2.ClientHttp2Session, route: R, body: AgentRequest<R>, timeoutMs: number): Promise<AgentReply<R>> {
    const { method, path } = AgentRoutes[route]
    const req = session.request({ ':method': method, ':path': path, ...(body === undefined ? {} : { 'content-type': 'application/json' }) })
    const r = await this.collect(req, timeoutMs, this.maxReplyBytes, () => req.end(body === undefined ? undefined : JSON.stringify(body)))
    return acceptReply(route, r.status, r.body)
  }

  /** Streams a tar.gz `body` to an upload route (backpressure via pipe); resolves once the agent accepted it. */
  async upload<R extends AgentUploadName>(route: R, query: AgentQuery<R>, body: Readable, timeoutMs: number): Promise<void> {
    const spec = AgentRoutes[route]
    const req = await this.stream(spec.method, `${spec.path}${encodeQuery(query)}`, { 'content-type': spec.request }, { waitForTrailers: true })
    // Node ends a stream's body (END_STREAM) before it resets it, so an abandoned upload can look
    // complete to the agent: only a body that ended here is confirmed, by a trailer with its length.
    let sent = 0
    let ended = false
    body.on('data', (c: Buffer) => (sent += c.length))
    body.once('end', () => (ended = true))
    req.once('wantTrailers', () => {
      if (ended) req.sendTrailers({ [BODY_BYTES_TRAILER]: String(sent) })
      else req.close(http2.constants.NGHTTP2_CANCEL)
    })
    let bodyError: Error | undefined
    let reply: RawReply
    try {
      reply = await this.collect(req, timeoutMs, this.maxReplyBytes, () => {
        body.on('error', (err) => {
          bodyError = err
          req.close(http2.constants.NGHTTP2_CANCEL)
        })
        body.pipe(req)
      })
    } catch (err) {
      // A body that failed (over its size limit, client gone) is the caller's error, not the agent's.
      throw bodyError ?? err
    }
    if (bodyError) throw bodyError
    acceptUploaded(route, reply.status, reply.body)
  }

  /**
   * Opens a streamed download and returns the tar.gz stream, which the caller reads
   * (flow-controlled by HTTP/2, so the guest cannot push faster than the caller consumes). Any
   * other status comes with the agent's error body, read here under the same deadline and a
   * small cap, checked, and thrown as its fault.
   */
  async download(query: AgentQuery<'download'>, timeoutMs: number): Promise<Readable> {
    return (await this.openStream('download', query, timeoutMs)).body
  }

  /**
   * Opens a streamed exec/run and returns its reply stream (NDJSON OutputEvents, paused, unread:
   * read it through an EventRelay) once the agent answered with its headers, which it does as
   * soon as the command started. A refusal (bad cwd, bad request) comes as an ordinary error
   * reply, read and thrown here as its fault. Closing the returned stream cancels it, and the
   * agent kills the command.
   */
  async openEvents<R extends AgentEventStreamName>(route: R, body: AgentRequest<R>, timeoutMs: number): Promise<{ stream: Readable; cancel: () => void }> {
    const spec = AgentRoutes[route]
    const req = await this.stream(spec.method, spec.path, { 'content-type': 'application/json' })
    const r = await this.collect(req, timeoutMs, ERROR_BODY_MAX_BYTES, () => req.end(JSON.stringify(body)), (status) => status === spec.status)
    if (r.status === spec.status) return { stream: req, cancel: () => req.close(http2.constants.NGHTTP2_CANCEL) }
    throw refusal(route, r.status, r.body)
  }

  /** The largest reply this client reads whole (an event stream's exit line is bounded by it too). */
  get replyCap(): number {
    return this.maxReplyBytes
  }

  /**
   * Opens a streamed reply of any stream route (file bytes, watch events, a process's output) with its headers, read
   * by the caller under HTTP/2 flow control; destroying the stream cancels it in the guest.
   * `timeoutMs` bounds the wait for the headers only. Failures as in download().
   */
  async openStream<R extends AgentDownloadName>(route: R, query: AgentQuery<R>, timeoutMs: number): Promise<{ body: http2.ClientHttp2Stream; headers: http2.IncomingHttpHeaders }> {
    const spec = AgentRoutes[route]
    const req = await this.stream(spec.method, `${spec.path}${encodeQuery(query)}`)
    let headers: http2.IncomingHttpHeaders = {}
    req.once('response', (h) => (headers = h))
    const r = await this.collect(req, timeoutMs, ERROR_BODY_MAX_BYTES, () => req.end(), (status) => status === spec.status)
    if (r.status === spec.status) return { body: req, headers }
    throw refusal(route, r.status, r.body)
  }

  /**
   * Bytes the agent has sent this client over all its sessions. It moves while the agent works
   * through a transfer even when a request waits behind it in the channel: a big upload is
   * acknowledged by HTTP/2 window updates, a download or output stream is data.
   */
  bytesHeard(): number {
    return this.heardBefore + (this.sock?.bytesRead ?? 0)
  }

  /** Drops the session (its streams fail); the next request reconnects with a fresh resync. */
  reset(): void {
    this.session?.destroy()
    this.session = undefined
  }

  close(): void {
    this.closed = true
    this.session?.destroy()
    this.session = undefined
  }

  /**
   * Reads one reply of at most `maxBytes` within `timeoutMs`. Past either limit the stream is
   * cancelled (the session and its other streams stay usable) and the call fails; nothing the
   * agent sends on this stream can throw outside the returned promise. When `handOver` accepts
   * the status, the reply resolves at its headers and the caller reads the (paused) stream itself.
   */
  private collect(req: http2.ClientHttp2Stream, timeoutMs: number, maxBytes: number, send: () => void, handOver?: (status: number) => boolean): Promise<RawReply> {
    const done = new Promise<RawReply>((resolve, reject) => {
      let status = 0
      let size = 0
      let chunks: Buffer[] = []
      const onData = (c: Buffer) => {
        size += c.length
        if (size <= maxBytes) return void chunks.push(c)
        chunks = []
        req.off('data', onData)
        req.close(http2.constants.NGHTTP2_CANCEL)
        reject(new AgentReplyTooLargeError(maxBytes))
      }
      req.once('response', (h) => {
        status = Number(h[':status'])
        if (handOver?.(status)) {
          req.off('data', onData)
          req.pause()
          resolve({ status, body: undefined })
        }
      })
      req.on('data', onData)
      req.once('end', () => {
        if (!status) return reject(new AgentUnavailableError('agent closed the stream without a reply'))
        try {
          const text = Buffer.concat(chunks).toString('utf8')
          resolve({ status, body: text ? (JSON.parse(text) as unknown) : undefined })
        } catch {
          reject(new AgentUnavailableError(`agent sent a non-JSON reply (status ${status})`))
        }
      })
      req.once('error', (err) => reject(new AgentUnavailableError(err.message)))
      req.once('close', () => {
        if (!status) reject(new AgentUnavailableError('agent closed the stream'))
      })
    })
    send()
    return withTimeout(done, timeoutMs, () => req.close(http2.constants.NGHTTP2_CANCEL))
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let t: NodeJS.Timeout
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => {
      onTimeout()
      reject(new AgentUnavailableError(`agent did not reply within ${ms} ms`))
    }, ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(t))
}
