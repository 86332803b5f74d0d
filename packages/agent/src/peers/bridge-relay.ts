// The guest end of the peer bridge. Consumer code (any uid) connects to a local Unix socket and
// writes one JSON line (PeerCallRequest); the agent forwards it over the rds.bridge virtio port to
// the manager and writes the manager's one-line reply back. The agent adds no identity and makes
// no decision: the manager checks every call against the VM's links and the provider's manifest.
// A call never hangs: it ends with the manager's reply, a timeout, or "connection lost".
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { ackLine, BRIDGE_PORT_NAME, BRIDGE_PREFACE, BridgeReplyFrame, jsonLine, parseFrame, PeerCallRequest, PeerLimits, readLines, type PeerCallReply } from '@rds/protocol'
import { log } from '../log.ts'
import { awaitPreface, syncTokenOf } from '../transport/resync.ts'
import { servePort } from '../transport/virtio-port.ts'

/** How long a call waits for the manager to (re)connect the bridge, e.g. during a manager restart. */
const HOST_WAIT_MS = 10_000
/** Beyond the call's own timeout: the manager answers a timed-out call itself, this is a backstop. */
const REPLY_GRACE_MS = 15_000
/** Open local connections at once; each may buffer up to a frame, so this bounds the relay's memory. */
const MAX_LOCAL_CONNECTIONS = 64

interface Pending {
  resolve: (r: PeerCallReply) => void
  timer: NodeJS.Timeout
}

const unavailable = (message: string): PeerCallReply => ({ ok: false, code: 'peer_bridge_unavailable', message })
const RECONNECTED = 'the manager reconnected the bridge during the call; it may or may not have run'

export class BridgeRelay {
  private host: net.Socket | undefined
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private readonly hostWaiters = new Set<() => void>()
  private readonly hostWaitMs: number

  constructor(hostWaitMs = HOST_WAIT_MS) {
    this.hostWaitMs = hostWaitMs
  }

  /** A new host connection, after the resync handshake (its first line is the preface). */
  attach(sock: net.Socket): void {
    this.detach(RECONNECTED)
    this.host = sock
    readLines(sock, PeerLimits.maxFrameBytes, (line) => {
      // The host repeats the preface as a heartbeat (see the manager's bridge-connection.ts).
      if (line + '\n' === BRIDGE_PREFACE) return
      // A new host resyncing on a port this relay never saw close (a VM restored from a snapshot
      // taken while the bridge was up, a reconnect faster than the guest read): answered here as
      // the handshake would, or the host would wait for an ACK that never comes. The calls of the
      // host before it cannot be answered any more.
      const token = syncTokenOf(line)
      if (token !== undefined) {
        this.failPending(RECONNECTED)
        sock.write(ackLine(token))
        return
      }
      this.onReply(line)
    }, () => {
      if (this.host === sock) this.detach('the bridge to the manager was lost during the call; it may or may not have run')
    })
    sock.resume()
    for (const w of this.hostWaiters) w()
    this.hostWaiters.clear()
  }

  private detach(reason: string): void {
    const old = this.host
    this.host = undefined
    old?.destroy()
    this.failPending(reason)
  }

  private failPending(reason: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer)
      p.resolve(unavailable(reason))
      this.pending.delete(id)
    }
  }

  private onReply(line: string): void {
    const parsed = parseFrame(BridgeReplyFrame, line)
    if (!('frame' in parsed)) {
      log.warn(`peer bridge: dropped a line from the host that is no reply frame (${parsed.problem})`)
      return
    }
    const { frame } = parsed
    const p = this.pending.get(frame.id)
    if (!p) return
    this.pending.delete(frame.id)
    clearTimeout(p.timer)
    const { id: _id, ...reply } = frame
    p.resolve(reply)
  }

  private async waitForHost(): Promise<net.Socket | undefined> {
    if (this.host) return this.host
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t)
        this.hostWaiters.delete(done)
        resolve()
      }
      const t = setTimeout(done, this.hostWaitMs)
      this.hostWaiters.add(done)
    })
    return this.host
  }

  async call(req: PeerCallRequest): Promise<PeerCallReply> {
    const host = await this.waitForHost()
    if (!host) return unavailable('the peer bridge is not connected to the manager')
    const id = this.nextId++
    const timeoutMs = Math.min(req.timeoutMs ?? PeerLimits.defaultTimeoutMs, PeerLimits.maxTimeoutMs) + REPLY_GRACE_MS
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        resolve({ ok: false, code: 'peer_call_timeout', message: `no reply from the manager within ${timeoutMs} ms` })
      }, timeoutMs)
      this.pending.set(id, { resolve, timer })
      host.write(jsonLine({ ...req, id }))
    })
  }
}

/** A proxy's request line, checked by the same schema the manager checks the frame with; only its known fields travel on. */
export function parseRequest(line: string): PeerCallRequest | string {
  const parsed = parseFrame(PeerCallRequest, line)
  if (!('frame' in parsed)) return `not a peer call request (${parsed.problem})`
  const { alias, modulePath, exportName, args, timeoutMs } = parsed.frame
  return { alias, modulePath, exportName, args, ...(timeoutMs !== undefined ? { timeoutMs } : {}) }
}

/** Serves the local socket (one request line, one reply line per connection) and the virtio port. */
export function startBridgeRelay(socketPath: string): BridgeRelay {
  const relay = new BridgeRelay()
  const dir = path.dirname(socketPath)
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 })
  fs.chmodSync(dir, 0o755)
  fs.rmSync(socketPath, { force: true })
  const server = net.createServer((client) => {
    let answered = false
    const answer = (r: PeerCallReply) => {
      if (answered) return
      answered = true
      client.end(jsonLine(r))
    }
    readLines(client, PeerLimits.maxFrameBytes, (line) => {
      if (answered) return
      const req = parseRequest(line)
      if (typeof req === 'string') answer({ ok: false, code: 'peer_call_invalid', message: req })
      else void relay.call(req).then(answer)
    }, () => {})
  })
  server.maxConnections = MAX_LOCAL_CONNECTIONS
  server.on('error', (e) => log.error(`peer bridge socket: ${e.message}`))
  server.listen(socketPath, () => {
    // Any local user may call: the VM as a whole is the caller the manager authorizes.
    fs.chmodSync(socketPath, 0o666)
  })
  servePort(BRIDGE_PORT_NAME, (sock) => {
    sock.on('error', () => sock.destroy())
    sock.on('end', () => sock.destroy())
    awaitPreface(sock, (ready) => relay.attach(ready), Buffer.from(BRIDGE_PREFACE))
  })
  return relay
}
