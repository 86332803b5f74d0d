// Host side of the control channel for tests: the manager's own resync (one implementation of
// the host side), then HTTP/2.
import http2 from 'node:http2'
import { BODY_BYTES_TRAILER } from '@rds/protocol'
import { connectAndResync } from '../../../manager/src/runtime/agent/resync.ts'

export async function connectAgent(socketPath: string, timeoutMs = 10_000): Promise<http2.ClientHttp2Session> {
  const sock = await connectAndResync(socketPath, timeoutMs)
  sock.pause()
  const session = http2.connect('http://agent', { createConnection: () => sock, settings: { initialWindowSize: 4 * 1024 * 1024 } })
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve())
    session.once('error', reject)
  })
  return session
}

export interface Reply {
  status: number
  headers: http2.IncomingHttpHeaders
  body: Buffer
}

/** A Buffer body goes as the manager sends raw bodies: ended, then confirmed by its length trailer (unless `trailer` is false). */
export function request(session: http2.ClientHttp2Session, method: string, path: string, body?: Buffer | string | object, contentType = 'application/json', trailer = true): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const confirm = Buffer.isBuffer(body) && trailer
    const req = session.request({ ':method': method, ':path': path, ...(body !== undefined ? { 'content-type': contentType } : {}) }, { waitForTrailers: confirm })
    if (confirm) req.once('wantTrailers', () => req.sendTrailers({ [BODY_BYTES_TRAILER]: String((body as Buffer).length) }))
    const chunks: Buffer[] = []
    let headers: http2.IncomingHttpHeaders = {}
    req.on('response', (h) => (headers = h))
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks) }))
    req.on('error', reject)
    if (body === undefined) req.end()
    else req.end(Buffer.isBuffer(body) ? body : typeof body === 'string' ? body : JSON.stringify(body))
  })
}

export async function json<T = any>(session: http2.ClientHttp2Session, method: string, path: string, body?: object): Promise<{ status: number; body: T }> {
  const r = await request(session, method, path, body)
  return { status: r.status, body: r.body.length ? JSON.parse(r.body.toString('utf8')) : undefined }
}
