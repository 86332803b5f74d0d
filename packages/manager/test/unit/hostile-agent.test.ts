// Finding 1 of issue 13: a hostile guest agent answers with replies of any size, or never
// finishes one. The agent is root-controlled code, so a scripted agent stands in for it here:
// the real AgentClient talks to it over a real Unix socket, with the real channel resync and
// HTTP/2, exactly as it talks to QEMU's socket of a VM's control port. Every oversize or late
// reply must fail that request only; the client (and this process) keeps working.
import fs from 'node:fs'
import http2 from 'node:http2'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ACK_PREFIX, HTTP2_PREFACE, SYNC_PREFIX } from '@rds/protocol'
import { AgentClient, AgentReplyTooLargeError, AgentUnavailableError, DEFAULT_REPLY_MAX_BYTES } from '../../src/runtime/agent/client.ts'
import { agentFault } from '../../src/services/agent-fault.ts'
import { ApiError } from '../../src/errors.ts'

const MiB = 1024 * 1024
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-hostile-'))
const socketPath = path.join(dir, 'control.sock')
let server: net.Server
/** Bytes the hostile agent managed to hand to the socket, per path. */
const sent = new Map<string, number>()

/** A body of `total` bytes of valid JSON, produced as the reader takes it (the agent never holds it). */
function streamJson(stream: http2.ServerHttp2Stream, label: string, total: number): void {
  const chunk = Buffer.alloc(256 * 1024, 0x61)
  stream.write('{"status":"ok","pad":"')
  let left = total
  const pump = () => {
    while (left > 0 && !stream.destroyed) {
      const n = Math.min(left, chunk.length)
      left -= n
      sent.set(label, (sent.get(label) ?? 0) + n)
      if (!stream.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void stream.once('drain', pump)
    }
    if (!stream.destroyed) stream.end('"}')
  }
  stream.on('error', () => {})
  pump()
}

function hostileSession(sock: net.Socket): void {
  const h2 = http2.createServer()
  h2.on('stream', (stream, headers) => {
    const p = String(headers[':path'])
    stream.on('error', () => {})
    if (p === '/v1/init') return void stream.respond({ ':status': 200 }, { endStream: true })
    if (p === '/v1/health') {
      stream.respond({ ':status': 200, 'content-type': 'application/json' })
      return void stream.end(JSON.stringify({ status: 'ok', uptimeMs: 1 }))
    }
    if (p.startsWith('/huge/')) {
      stream.respond({ ':status': 200, 'content-type': 'application/json' })
      return streamJson(stream, p, Number(p.slice('/huge/'.length)))
    }
    if (p === '/late') {
      // Headers, a byte, then nothing ever again.
      stream.respond({ ':status': 200, 'content-type': 'application/json' })
      return void stream.write('{')
    }
    if (p === '/download-error-huge') {
      stream.respond({ ':status': 500, 'content-type': 'application/json' })
      return streamJson(stream, p, 512 * MiB)
    }
    if (p === '/download-error-late') {
      stream.respond({ ':status': 500, 'content-type': 'application/json' })
      return void stream.write('{"code":')
    }
    stream.respond({ ':status': 404 }, { endStream: true })
  })
  h2.emit('connection', sock)
}

/** The guest side of the channel resync: ACK every SYNC, drop bytes until the HTTP/2 preface. */
function acceptChannel(sock: net.Socket): void {
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
    hostileSession(sock)
  }
  sock.on('data', onData)
  sock.on('error', () => {})
}

beforeAll(async () => {
  server = net.createServer(acceptChannel)
  await new Promise<void>((r) => server.listen(socketPath, r))
})
afterAll(() => {
  server?.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

async function client(maxReplyBytes?: number): Promise<AgentClient> {
  const c = new AgentClient(socketPath, async (json) => void (await json('POST', '/v1/init', {}, 5000)), maxReplyBytes ? { maxReplyBytes } : {})
  await c.waitReady(10_000, () => true)
  return c
}

it('a JSON reply over 512 MiB (past the longest string V8 can make) fails that request; the client and the process live on', async () => {
  const c = await client()
  const label = `/huge/${600 * MiB}`
  const rssBefore = process.memoryUsage().rss
  const err = await c.json('GET', label, undefined, 120_000).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(AgentReplyTooLargeError)
  const apiErr = agentFault('vm-x', err) as ApiError
  expect(apiErr).toBeInstanceOf(ApiError)
  expect([apiErr.status, apiErr.code]).toEqual([502, 'agent_reply_too_large'])
  // The same session still answers: only the offending stream was cancelled.
  const h = await c.json<{ status: string }>('GET', '/v1/health', undefined, 10_000)
  expect(h.body.status).toBe('ok')
  console.log(`hostile agent: offered ${600} MiB, handed ${Math.round((sent.get(label) ?? 0) / MiB)} MiB to the socket before the cancel; cap ${DEFAULT_REPLY_MAX_BYTES / MiB} MiB held; RSS change ${Math.round((process.memoryUsage().rss - rssBefore) / MiB)} MiB`)
  expect(sent.get(label)!).toBeLessThan(600 * MiB)
  c.close()
}, 180_000)

it('the cap is the configured one (AGENT_REPLY_MAX_BYTES)', async () => {
  const c = await client(1 * MiB)
  await expect(c.json('GET', `/huge/${2 * MiB}`, undefined, 30_000)).rejects.toBeInstanceOf(AgentReplyTooLargeError)
  const ok = await c.json<{ status: string; pad: string }>('GET', `/huge/${MiB / 2}`, undefined, 30_000)
  expect(ok.body.pad.length).toBe(MiB / 2)
  c.close()
})

it('an init reply over the cap makes the agent unavailable, not the manager', async () => {
  const c = new AgentClient(socketPath, async (json) => void (await json('GET', `/huge/${2 * MiB}`, undefined, 5000)), { maxReplyBytes: MiB })
  await expect(c.waitReady(3000, () => true)).rejects.toBeInstanceOf(AgentUnavailableError)
  c.close()
})

it('a reply that never ends fails at its deadline', async () => {
  const c = await client()
  await expect(c.json('GET', '/late', undefined, 500)).rejects.toThrow(/did not reply within 500 ms/)
  c.close()
})

it('a download error body is capped and has a deadline', async () => {
  const c = await client()
  const huge = await c.download('/download-error-huge', 60_000).catch((e: unknown) => e)
  expect(huge).toBeInstanceOf(AgentReplyTooLargeError)
  console.log(`hostile agent: download error body of 512 MiB offered, ${Math.round((sent.get('/download-error-huge') ?? 0) / 1024)} KiB handed over before the cancel (cap 64 KiB)`)
  await expect(c.download('/download-error-late', 500)).rejects.toThrow(/did not reply within 500 ms/)
  const h = await c.json<{ status: string }>('GET', '/v1/health', undefined, 10_000)
  expect(h.body.status).toBe('ok')
  c.close()
})
