// Host side of the control channel for tests: connect, resync handshake, then HTTP/2.
import http2 from 'node:http2'
import net from 'node:net'
import { ACK_PREFIX, SYNC_INTERVAL_MS, syncLine } from '@rds/protocol'

export async function connectAgent(socketPath: string, timeoutMs = 10_000): Promise<http2.ClientHttp2Session> {
  const sock = net.connect(socketPath)
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve)
    sock.once('error', reject)
  })
  const prefix = `test-${process.pid}-${Date.now()}`
  let n = 0
  let last = ''
  const send = (): void => {
    last = `${prefix}-${n++}`
    sock.write(syncLine(last))
  }
  await new Promise<void>((resolve, reject) => {
    let buf = ''
    const timer = setInterval(send, SYNC_INTERVAL_MS)
    const giveUp = setTimeout(() => done(new Error('resync handshake timed out')), timeoutMs)
    const done = (err?: Error): void => {
      clearInterval(timer)
      clearTimeout(giveUp)
      sock.off('data', onData)
      if (err) {
        sock.destroy()
        reject(err)
      } else resolve()
    }
    const onData = (c: Buffer): void => {
      buf += c.toString('latin1')
      const want = `${ACK_PREFIX}${last}\n`
      const i = buf.indexOf(want)
      if (i < 0) return
      const rest = buf.slice(i + want.length)
      if (rest) sock.unshift(Buffer.from(rest, 'latin1'))
      done()
    }
    sock.on('data', onData)
    send()
  })
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

export function request(session: http2.ClientHttp2Session, method: string, path: string, body?: Buffer | string | object, contentType = 'application/json'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': method, ':path': path, ...(body !== undefined ? { 'content-type': contentType } : {}) })
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
