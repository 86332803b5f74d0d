// The manager's client of one VM's guest agent: a single long-lived HTTP/2 session over the
// control channel (QEMU serves one client per socket, so streams are multiplexed on it),
// re-established with a resync whenever it drops.
import http2 from 'node:http2'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { connectAndResync } from './resync.ts'

const WINDOW = 4 * 1024 * 1024
/** A hostile agent may answer with any size; JSON replies are parsed whole, so they are capped. */
export const DEFAULT_REPLY_MAX_BYTES = 64 * 1024 * 1024
/** An error reply of a download is a short JSON document; more is not worth reading. */
const ERROR_BODY_MAX_BYTES = 64 * 1024

export class AgentUnavailableError extends Error {}

/** An agent fault too (the subclass keeps every existing agent-fault path), reported with its own code. */
export class AgentReplyTooLargeError extends AgentUnavailableError {
  readonly maxBytes: number
  constructor(maxBytes: number) {
    super(`agent reply exceeds ${maxBytes} bytes`)
    this.maxBytes = maxBytes
  }
}

export interface AgentClientOptions {
  /** Largest JSON reply read from the agent (AGENT_REPLY_MAX_BYTES). */
  maxReplyBytes?: number
}

/** A download either streams (200) or failed with the agent's (bounded) JSON error body. */
export type DownloadReply = { status: 200; contentType: string; stream: Readable } | { status: number; contentType: string; error: unknown }

export type JsonCall = <T>(method: string, path: string, body: unknown, timeoutMs: number) => Promise<AgentResponse<T>>

export interface AgentResponse<T> {
  status: number
  body: T
}

export class AgentClient {
  private readonly socketPath: string
  private readonly onConnect: ((json: JsonCall) => Promise<void>) | undefined
  private session: http2.ClientHttp2Session | undefined
  private connecting: Promise<http2.ClientHttp2Session> | undefined
  private readonly maxReplyBytes: number
  private closed = false

  /** `onConnect` runs after every new session (first connect and each reconnect), before any other request. */
  constructor(socketPath: string, onConnect?: (json: JsonCall) => Promise<void>, options: AgentClientOptions = {}) {
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
        if (this.onConnect) await this.onConnect((method, path, body, timeoutMs) => this.jsonOn(session, method, path, body, timeoutMs))
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

  private async stream(method: string, path: string, headers: http2.OutgoingHttpHeaders = {}): Promise<http2.ClientHttp2Stream> {
    return (await this.usableSession()).request({ ':method': method, ':path': path, ...headers })
  }

  /** A JSON request. `timeoutMs` bounds the whole exchange (the agent enforces run timeouts itself). */
  async json<T>(method: string, path: string, body: unknown, timeoutMs: number): Promise<AgentResponse<T>> {
    return this.jsonOn<T>(await this.usableSession(), method, path, body, timeoutMs)
  }

  private jsonOn<T>(session: http2.ClientHttp2Session, method: string, path: string, body: unknown, timeoutMs: number): Promise<AgentResponse<T>> {
    const req = session.request({ ':method': method, ':path': path, ...(body === undefined ? {} : { 'content-type': 'application/json' }) })
    return this.collect<T>(req, timeoutMs, this.maxReplyBytes, () => req.end(body === undefined ? undefined : JSON.stringify(body)))
  }

  /** Streams `body` to the agent (backpressure via pipe) and reads a JSON (or empty) reply. */
  async upload<T>(path: string, body: Readable, contentType: string, timeoutMs: number): Promise<AgentResponse<T>> {
    const req = await this.stream('POST', path, { 'content-type': contentType })
    let bodyError: Error | undefined
    let reply: AgentResponse<T>
    try {
      reply = await this.collect<T>(req, timeoutMs, this.maxReplyBytes, () => {
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
    return reply
  }

  /**
   * Opens a streamed download: the caller reads `stream` (flow-controlled by HTTP/2, so the
   * guest cannot push faster than the caller consumes). Any other status comes with the agent's
   * error body, read here under the same deadline and a small cap.
   */
  async download(path: string, timeoutMs: number): Promise<DownloadReply> {
    const req = await this.stream('GET', path)
    const r = await this.collect<unknown>(req, timeoutMs, ERROR_BODY_MAX_BYTES, () => req.end(), (status) => status === 200)
    if (r.status === 200) return { status: 200, contentType: r.contentType, stream: req }
    return { status: r.status, contentType: r.contentType, error: r.body }
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
  private collect<T>(req: http2.ClientHttp2Stream, timeoutMs: number, maxBytes: number, send: () => void, handOver?: (status: number) => boolean): Promise<AgentResponse<T> & { contentType: string }> {
    const done = new Promise<AgentResponse<T> & { contentType: string }>((resolve, reject) => {
      let status = 0
      let contentType = ''
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
        contentType = String(h['content-type'] ?? '')
        if (handOver?.(status)) {
          req.off('data', onData)
          req.pause()
          resolve({ status, contentType, body: undefined as T })
        }
      })
      req.on('data', onData)
      req.once('end', () => {
        if (!status) return reject(new AgentUnavailableError('agent closed the stream without a reply'))
        try {
          const text = Buffer.concat(chunks).toString('utf8')
          resolve({ status, contentType, body: (text ? JSON.parse(text) : undefined) as T })
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
