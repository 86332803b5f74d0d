// The SDK's one way to the API: base URL and key from the options or RDS_BASE_URL / RDS_API_KEY,
// a timeout per request, cancellation by AbortSignal, retries only for requests that are safe to
// repeat (GET, PUT, DELETE), and every error answer as an RdsApiError.
import { RdsApiError, RdsConnectionError } from './errors.ts'

export interface ClientOptions {
  /** Default: RDS_BASE_URL, else http://127.0.0.1:3000. */
  baseUrl?: string
  /** Default: RDS_API_KEY. */
  apiKey?: string
  /** Per request, in ms (default 120 000; runs may take up to the VM's exec timeout). */
  timeoutMs?: number
  /** Attempts of an idempotent request on a connection error or 502/503/504 (default 3). */
  retries?: number
  /** A fetch to use instead of the global one (tests, proxies). */
  fetch?: typeof fetch
}

export interface RequestOptions {
  signal?: AbortSignal
  timeoutMs?: number
}

/** An environment variable on Node, Bun and Deno (each has `process.env`); undefined in a browser. */
const env = (name: string): string | undefined => (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name] || undefined
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE'])
const RETRY_STATUS = new Set([502, 503, 504])

export class Http {
  readonly baseUrl: string
  private readonly apiKey: string
  private readonly timeoutMs: number
  private readonly retries: number
  private readonly fetchImpl: typeof fetch

  constructor(o: ClientOptions = {}) {
    this.baseUrl = (o.baseUrl || env('RDS_BASE_URL') || 'http://127.0.0.1:3000').replace(/\/+$/, '')
    const key = o.apiKey || env('RDS_API_KEY')
    if (!key) throw new Error('No API key: pass { apiKey } or set RDS_API_KEY')
    this.apiKey = key
    this.timeoutMs = o.timeoutMs ?? 120_000
    this.retries = Math.max(1, o.retries ?? 3)
    this.fetchImpl = o.fetch ?? fetch
  }

  /** A request whose answer is JSON (or nothing). */
  async json<T>(method: string, path: string, body?: unknown, o: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, body === undefined ? undefined : { body: JSON.stringify(body), type: 'application/json' }, o)
    const text = await res.text()
    return (text ? JSON.parse(text) : undefined) as T
  }

  /** A request whose body and/or answer are bytes; the answer is returned unread. */
  async send(method: string, path: string, body: { body: BodyInit; type: string } | undefined, o: RequestOptions = {}): Promise<Response> {
    const attempts = IDEMPOTENT.has(method) && !(body?.body instanceof ReadableStream) ? this.retries : 1
    let last: unknown
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const timeout = AbortSignal.timeout(o.timeoutMs ?? this.timeoutMs)
      const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout
      let res: Response
      try {
        res = await this.fetchImpl(`${this.baseUrl}${path}`, {
          method,
          signal,
          headers: { 'x-api-key': this.apiKey, ...(body ? { 'content-type': body.type } : {}) },
          body: body?.body,
          ...(body?.body instanceof ReadableStream ? { duplex: 'half' } : {}),
        } as RequestInit)
      } catch (err) {
        if (o.signal?.aborted) throw o.signal.reason ?? err
        last = timeout.aborted ? new RdsConnectionError(`no answer from ${this.baseUrl} within ${o.timeoutMs ?? this.timeoutMs} ms`, { cause: err }) : new RdsConnectionError(`cannot reach ${this.baseUrl}: ${(err as Error).message}`, { cause: err })
        if (attempt < attempts) await backoff(attempt)
        continue
      }
      if (res.ok) return res
      if (RETRY_STATUS.has(res.status) && attempt < attempts) {
        await res.body?.cancel()
        await backoff(attempt)
        continue
      }
      throw await errorOf(res)
    }
    throw last
  }
}

const backoff = (attempt: number) => new Promise((r) => setTimeout(r, 200 * 2 ** (attempt - 1)))

async function errorOf(res: Response): Promise<RdsApiError> {
  const text = await res.text().catch(() => '')
  try {
    const { code, message, ...details } = JSON.parse(text) as { code?: string; message?: string }
    return new RdsApiError(res.status, code ?? 'http_error', message ?? `${res.status} ${res.statusText}`, details)
  } catch {
    const requestId = res.headers.get('x-request-id')
    return new RdsApiError(res.status, 'http_error', text.slice(0, 500) || `${res.status} ${res.statusText}`, requestId ? { requestId } : {})
  }
}

export const q = (params: Record<string, string | number | boolean | undefined>): string => {
  const s = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined) s.set(k, String(v))
  const text = s.toString()
  return text ? `?${text}` : ''
}
