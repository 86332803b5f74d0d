// The control channel when the guest misses a host disconnect: a VM restored from a snapshot
// taken mid-session, or a host that reconnects before the guest read again. The guest's open port
// is still inside the old host's HTTP/2 session when the new host starts its resync. The port is
// modelled as QEMU's socket chardev and virtio-serial make it in that case (the guest sees none of
// the host's ends); both ends are the real code: the manager's connectAndResync, the agent's
// serveConnection on a real HTTP/2 server.
import fs from 'node:fs'
import http2 from 'node:http2'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { HTTP2_PREFACE } from '@rds/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { connectAndResync } from '../../manager/src/runtime/agent/resync.ts'
import { serveConnection, SESSION_PROBE, type SessionProbe } from '../src/transport/serve.ts'
import { connectAgent, request } from './helpers/agent-client.ts'

interface PortModel {
  hostPath: string
  /** How many times the guest has opened the port (the agent reopens it after ending a session). */
  opens: () => number
  /** The host connection vanishes: nothing more of it reaches the guest, not even a GOAWAY on its way out. */
  cutHost: () => void
  close: () => void
}

/**
 * One virtio-serial port: bytes flow between the one connected host and the guest's current open
 * of the port, and a host that leaves or arrives is invisible to the guest (the racy case). The
 * guest reopens the port whenever it closes it, as the agent's servePort does.
 */
async function portModel(server: http2.Http2Server, probe: SessionProbe): Promise<PortModel> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-port-'))
  const hostPath = path.join(dir, 'host.sock')
  const guestPath = path.join(dir, 'guest.sock')
  let host: net.Socket | undefined
  let portEnd: net.Socket | undefined
  let opens = 0
  let closed = false
  const hostServer = net.createServer((c) => {
    host?.destroy()
    host = c
    c.on('data', (d) => portEnd?.write(d))
    c.on('error', () => {})
    c.on('close', () => {
      if (host === c) host = undefined
    })
  })
  const guestServer = net.createServer((c) => {
    portEnd = c
    c.on('data', (d) => host?.write(d))
    c.on('error', () => {})
    c.on('close', () => {
      if (portEnd === c) portEnd = undefined
      if (!closed) setImmediate(open)
    })
  })
  const open = (): void => {
    opens++
    serveConnection(server, net.connect(guestPath), probe)
  }
  await new Promise<void>((r) => hostServer.listen(hostPath, r))
  await new Promise<void>((r) => guestServer.listen(guestPath, r))
  open()
  return {
    hostPath,
    opens: () => opens,
    cutHost: () => {
      host?.destroy()
      host = undefined
    },
    close: () => {
      closed = true
      host?.destroy()
      portEnd?.destroy()
      hostServer.close()
      guestServer.close()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

function pingServer(): http2.Http2Server {
  const server = http2.createServer()
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 })
    stream.end('pong')
  })
  return server
}

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

async function setUp(probe: SessionProbe): Promise<PortModel> {
  const port = await portModel(pingServer(), probe)
  cleanups.push(port.close)
  return port
}

async function ping(session: http2.ClientHttp2Session): Promise<string> {
  const r = await request(session, 'GET', '/health')
  return `${r.status} ${r.body.toString()}`
}

describe('a host that connects while the guest is still inside the last host’s session', () => {
  it('is answered at once when that session was between frames (its first SYNC line is a protocol error there)', async () => {
    const port = await setUp(SESSION_PROBE)
    const first = await connectAgent(port.hostPath)
    expect(await ping(first)).toBe('200 pong')
    port.cutHost()
    first.destroy()

    // Well inside SESSION_PROBE.idleMs: the probe plays no part here.
    expect(SESSION_PROBE.idleMs).toBeGreaterThan(5000)
    const second = await connectAgent(port.hostPath, 5000)
    expect(await ping(second)).toBe('200 pong')
    expect(port.opens()).toBe(2)
    second.destroy()
  })

  it('is answered once the idle probe finds the old session dead (it was cut inside a frame)', async () => {
    const port = await setUp({ idleMs: 300, ackMs: 300 })
    // The old host gets as far as the start of an upload's DATA frame: the guest's session waits
    // for the other 16 kB of it, so the new host's SYNC lines land inside that frame's payload (at
    // the host's SYNC rate, filling it takes longer than this connect may).
    const old = await connectAndResync(port.hostPath, 5000)
    old.write(`${HTTP2_PREFACE}\r\nSM\r\n\r\n`)
    old.write(Buffer.from([0, 0, 0, 0x04, 0, 0, 0, 0, 0])) // SETTINGS
    old.write(Buffer.from([0, 0, 3, 0x01, 0x04, 0, 0, 0, 1, 0x83, 0x86, 0x84])) // HEADERS: POST http /
    old.write(Buffer.from([0, 0x3e, 0x80, 0x00, 0, 0, 0, 0, 1, ...Buffer.alloc(10)])) // DATA of 16000 bytes: 10 sent
    await new Promise((r) => setTimeout(r, 100))
    port.cutHost()
    old.destroy()

    const session = await connectAgent(port.hostPath, 5000)
    expect(await ping(session)).toBe('200 pong')
    expect(port.opens()).toBe(2)
    session.destroy()
  })

  it('a live idle session answers the probe and is kept', async () => {
    const port = await setUp({ idleMs: 100, ackMs: 2000 })
    const session = await connectAgent(port.hostPath)
    expect(await ping(session)).toBe('200 pong')
    let pings = 0
    session.on('ping', () => pings++)
    await new Promise((r) => setTimeout(r, 800))
    expect(pings).toBeGreaterThan(0)
    expect(await ping(session)).toBe('200 pong')
    expect(port.opens()).toBe(1)
    session.destroy()
  })
})
