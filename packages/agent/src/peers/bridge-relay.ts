// The guest end of the peer bridge. Consumer code (any uid) connects to a local Unix socket and
// writes one JSON line (PeerCallRequest); the agent forwards it over the rds.bridge virtio port to
// the manager and writes the manager's one-line reply back. The agent adds no identity and makes
// no decision: the manager checks every call against the VM's links and the provider's manifest.
// A call never hangs: it ends with the manager's reply, a timeout, or "connection lost".
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { BRIDGE_PORT_NAME, BRIDGE_PREFACE, jsonLine, PeerLimits, readLines, type BridgeReplyFrame, type PeerCallReply, type PeerCallRequest } from '@rds/protocol'
import { log } from '../log.ts'
import { awaitPreface } from '../transport/resync.ts'
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
    this.detach('the manager reconnected the bridge during the call; it may or may not have run')
    this.host = sock
    readLines(sock, PeerLimits.maxFrameBytes, (line) => {
      // The host repeats the preface as a heartbeat (see the manager's bridge-connection.ts).
      if (line + '\n' === BRIDGE_PREFACE) return
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
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer)
      p.resolve(unavailable(reason))
      this.pending.delete(id)
    }
  }

  private onReply(line: string): void {
    let frame: BridgeReplyFrame
    try {
      frame = JSON.parse(line) as BridgeReplyFrame
    } catch {
      log.warn('peer bridge: dropped a non-JSON line from the host')
      return
    }
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

function parseRequest(line: string): PeerCallRequest | string {
  let v: unknown
  try {
    v = JSON.parse(line)
  } catch {
    return 'request is not valid JSON'
  }
  const r = v as Partial<PeerCallRequest>
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return 'request must be a JSON object'
  if (typeof r.alias !== 'string' || typeof r.modulePath !== 'string' || typeof r.exportName !== 'string') return 'alias, modulePath and exportName must be strings'
  if (!Array.isArray(r.args)) return 'args must be an array'
  if (r.timeoutMs !== undefined && (typeof r.timeoutMs !== 'number' || !Number.isInteger(r.timeoutMs) || r.timeoutMs <= 0)) return 'timeoutMs must be a positive integer'
  return { alias: r.alias, modulePath: r.modulePath, exportName: r.exportName, args: r.args, ...(r.timeoutMs ? { timeoutMs: r.timeoutMs } : {}) }
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
