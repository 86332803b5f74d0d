// The VMs' resolver: a forwarder on the host end of the VM link (the guests know it as the
// gateway, port 53). The namespace rules already let only VMs with DNS reach it; the forwarder
// decides again by source address (which the anti-spoof rule guarantees is the VM's own):
// REFUSED for VMs without DNS, so nothing can be tunnelled out through lookups; any name for
// VMs with outboundInternet; only their allowDomains for the others, whose answers open the
// resolved addresses in the VM's egress set before the VM sees them.
import dgram from 'node:dgram'
import net from 'node:net'
import dnsPacket from 'dns-packet'

const UPSTREAM_TIMEOUT_MS = 4000
const MAX_TCP_MESSAGE = 65535

export type DnsAccess =
  | { kind: 'refuse' }
  | { kind: 'any' }
  | { kind: 'listed'; allowed: (name: string) => boolean; onAnswer: (addresses: string[], ttlS: number) => Promise<void> }

export interface DnsForwarderOptions {
  listenAddress: string
  port?: number
  upstreams: string[]
  access: (sourceAddress: string) => DnsAccess
  onError?: (err: Error) => void
}

/** A REFUSED answer to `query` (header and question kept, nothing else). */
export function refusedAnswer(query: Buffer): Buffer | undefined {
  if (query.length < 12) return undefined
  let at = 12
  if (query.readUInt16BE(4) >= 1) {
    while (at < query.length && query[at] !== 0) {
      if ((query[at]! & 0xc0) !== 0) return undefined
      at += query[at]! + 1
    }
    at += 5
    if (at > query.length) return undefined
  }
  const out = Buffer.from(query.subarray(0, at))
  out[2] = 0x80 | (query[2]! & 0x79) // QR, opcode and RD from the query
  out[3] = 0x05 // REFUSED
  out.writeUInt16BE(Math.min(1, query.readUInt16BE(4)), 4)
  out.fill(0, 6, 12)
  return out
}

export class DnsForwarder {
  private udp: dgram.Socket | undefined
  private tcp: net.Server | undefined
  private readonly o: DnsForwarderOptions

  constructor(o: DnsForwarderOptions) {
    this.o = o
  }

  async start(): Promise<void> {
    const port = this.o.port ?? 53
    const udp = dgram.createSocket('udp4')
    udp.on('message', (msg, rinfo) => void this.answer(msg, rinfo.address).then((r) => r && udp.send(r, rinfo.port, rinfo.address)))
    await listening(udp, (done) => udp.bind({ address: this.o.listenAddress, port }, done))
    udp.on('error', (err) => this.o.onError?.(err))
    this.udp = udp
    const tcp = net.createServer((sock) => this.serveTcp(sock))
    await listening(tcp, (done) => tcp.listen({ host: this.o.listenAddress, port }, done))
    tcp.on('error', (err) => this.o.onError?.(err))
    this.tcp = tcp
  }

  async close(): Promise<void> {
    this.udp?.close()
    await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()))
  }

  /** The reply to one query from `source`, or undefined to stay silent. */
  private async answer(query: Buffer, source: string): Promise<Buffer | undefined> {
    const access = this.o.access(source)
    if (access.kind === 'refuse') return refusedAnswer(query)
    if (access.kind === 'any') return this.forward(query)
    let questions
    try {
      questions = dnsPacket.decode(query).questions ?? []
    } catch {
      return refusedAnswer(query)
    }
    if (questions.length === 0 || !questions.every((q) => access.allowed(q.name))) return refusedAnswer(query)
    const reply = await this.forward(query)
    if (!reply) return undefined
    try {
      const answers = (dnsPacket.decode(reply).answers ?? []).flatMap((a) => (a.type === 'A' ? [a] : []))
      if (answers.length) await access.onAnswer(answers.map((a) => a.data), Math.min(...answers.map((a) => a.ttl ?? 60)))
    } catch (err) {
      this.o.onError?.(err as Error)
      return refusedAnswer(query)
    }
    return reply
  }

  private async forward(msg: Buffer): Promise<Buffer | undefined> {
    if (msg.length < 12) return undefined
    for (const upstream of this.o.upstreams) {
      const reply = await new Promise<Buffer | undefined>((resolve) => {
        const s = dgram.createSocket('udp4')
        const done = (r: Buffer | undefined) => {
          clearTimeout(timer)
          s.close()
          resolve(r)
        }
        const timer = setTimeout(() => done(undefined), UPSTREAM_TIMEOUT_MS)
        s.on('error', () => done(undefined))
        // Only a reply carrying the query's id counts.
        s.on('message', (r) => r.length >= 2 && r.readUInt16BE(0) === msg.readUInt16BE(0) && done(r))
        s.send(msg, 53, upstream)
      })
      if (reply) return reply
    }
    return undefined
  }

  /** DNS over TCP: length-prefixed messages, each answered like a UDP query. */
  private serveTcp(sock: net.Socket): void {
    sock.setTimeout(UPSTREAM_TIMEOUT_MS * 2, () => sock.destroy())
    sock.on('error', () => {})
    const source = sock.remoteAddress?.replace(/^::ffff:/, '') ?? ''
    let buf = Buffer.alloc(0)
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      if (buf.length > 2 * MAX_TCP_MESSAGE) return void sock.destroy()
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0))
        buf = buf.subarray(2 + msg.length)
        void this.answer(Buffer.from(msg), source).then((r) => {
          if (r && !sock.destroyed) sock.write(Buffer.concat([Buffer.from([r.length >> 8, r.length & 255]), r]))
        })
      }
    })
  }
}

function listening(server: dgram.Socket | net.Server, start: (done: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    start(() => {
      server.off('error', reject)
      resolve()
    })
  })
}
