// The manager's client of one VM's guest agent: a single long-lived HTTP/2 session over the
// control channel (QEMU serves one client per socket, so streams are multiplexed on it),
// re-established with a resync whenever it drops.
import http2 from 'node:http2'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { connectAndResync } from './resync.ts'

const WINDOW = 4 * 1024 * 1024

export class AgentUnavailableError extends Error {}

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
  private closed = false

  /** `onConnect` runs after every new session (first connect and each reconnect), before any other request. */
  constructor(socketPath: string, onConnect?: (json: JsonCall) => Promise<void>) {
    this.socketPath = socketPath
    this.onConnect = onConnect
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
          settings: { initialWindowSize: WINDOW },
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
    return this.collect<T>(req, timeoutMs, () => req.end(body === undefined ? undefined : JSON.stringify(body)))
  }

  /** Streams `body` to the agent (backpressure via pipe) and reads a JSON (or empty) reply. */
  async upload<T>(path: string, body: Readable, contentType: string, timeoutMs: number): Promise<AgentResponse<T>> {
    const req = await this.stream('POST', path, { 'content-type': contentType })
    let bodyError: Error | undefined
    let reply: AgentResponse<T>
    try {
      reply = await this.collect<T>(req, timeoutMs, () => {
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

  /** Opens a streamed download; the caller reads the stream when status is 200. */
  async download(path: string, timeoutMs: number): Promise<{ status: number; contentType: string; stream: Readable }> {
    const req = await this.stream('GET', path)
    req.end()
    const headers = await withTimeout(
      new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        req.once('response', resolve)
        req.once('error', reject)
      }),
      timeoutMs,
      () => req.close(http2.constants.NGHTTP2_CANCEL),
    )
    return { status: Number(headers[':status']), contentType: String(headers['content-type'] ?? ''), stream: req }
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

  private collect<T>(req: http2.ClientHttp2Stream, timeoutMs: number, send: () => void): Promise<AgentResponse<T>> {
    const done = new Promise<AgentResponse<T>>((resolve, reject) => {
      let status = 0
      const chunks: Buffer[] = []
      req.once('response', (h) => (status = Number(h[':status'])))
      req.on('data', (c: Buffer) => chunks.push(c))
      req.once('end', () => {
        if (!status) return reject(new AgentUnavailableError('agent closed the stream without a reply'))
        const text = Buffer.concat(chunks).toString('utf8')
        try {
          resolve({ status, body: (text ? JSON.parse(text) : undefined) as T })
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
