// The VMs' resolver: a forwarder on the host end of the VM link (the guests know it as the
// gateway, port 53). The namespace rules already let only VMs with DNS reach it; the forwarder
// checks again by source address (which the namespace guarantees is the VM's own) and answers
// REFUSED otherwise, so a VM without egress cannot tunnel data out through DNS lookups.
import dgram from 'node:dgram'
import fs from 'node:fs'
import net from 'node:net'

const UPSTREAM_TIMEOUT_MS = 4000
const MAX_TCP_MESSAGE = 65535

export interface DnsForwarderOptions {
  listenAddress: string
  port?: number
  upstreams: string[]
  /** Whether the VM with this source address may resolve names. */
  allowed: (sourceAddress: string) => boolean
  onError?: (err: Error) => void
}

/** Nameservers of the host (resolv.conf), used when DNS_UPSTREAM is not set. */
export function hostNameservers(resolvConf = '/etc/resolv.conf'): string[] {
  try {
    return [...fs.readFileSync(resolvConf, 'utf8').matchAll(/^nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1]!)
  } catch {
    return []
  }
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
    udp.on('message', (msg, rinfo) => void this.answerUdp(msg, rinfo))
    udp.on('error', (err) => this.o.onError?.(err))
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject)
      udp.bind({ address: this.o.listenAddress, port }, () => {
        udp.off('error', reject)
        resolve()
      })
    })
    this.udp = udp
    const tcp = net.createServer((sock) => this.answerTcp(sock))
    tcp.on('error', (err) => this.o.onError?.(err))
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject)
      tcp.listen({ host: this.o.listenAddress, port }, () => {
        tcp.off('error', reject)
        resolve()
      })
    })
    this.tcp = tcp
  }

  async close(): Promise<void> {
    this.udp?.close()
    await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()))
  }

  private async answerUdp(msg: Buffer, rinfo: dgram.RemoteInfo): Promise<void> {
    const reply = this.o.allowed(rinfo.address) ? await this.forwardUdp(msg) : refusedAnswer(msg)
    if (reply) this.udp?.send(reply, rinfo.port, rinfo.address)
  }

  private async forwardUdp(msg: Buffer): Promise<Buffer | undefined> {
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

  private answerTcp(sock: net.Socket): void {
    sock.setTimeout(UPSTREAM_TIMEOUT_MS * 2, () => sock.destroy())
    sock.on('error', () => {})
    const address = sock.remoteAddress?.replace(/^::ffff:/, '') ?? ''
    if (!this.o.allowed(address)) {
      // Read one message to answer it properly, then close.
      sock.once('data', (d) => {
        const q = d.length > 2 ? refusedAnswer(d.subarray(2)) : undefined
        if (q) sock.end(Buffer.concat([Buffer.from([q.length >> 8, q.length & 255]), q]))
        else sock.destroy()
      })
      return
    }
    const upstream = this.o.upstreams[0]
    if (!upstream) return void sock.destroy()
    const up = net.connect({ host: upstream, port: 53 })
    up.setTimeout(UPSTREAM_TIMEOUT_MS * 2, () => up.destroy())
    up.on('error', () => sock.destroy())
    sock.on('close', () => up.destroy())
    up.on('close', () => sock.destroy())
    let seen = 0
    sock.on('data', (d) => {
      seen += d.length
      if (seen > 4 * MAX_TCP_MESSAGE) sock.destroy()
    })
    sock.pipe(up).pipe(sock)
  }
}
