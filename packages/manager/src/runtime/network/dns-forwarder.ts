// The VMs' resolver: a forwarder on the host end of the VM link (the guests know it as the
// gateway, port 53). The namespace rules already let only VMs with DNS reach it; the forwarder
// decides again by source address (which the anti-spoof rule guarantees is the VM's own):
// REFUSED for VMs without DNS, so nothing can be tunnelled out through lookups; any name for
// VMs with outboundInternet; only their allowDomains for the others, whose answers open the
// resolved addresses in the VM's egress set before the VM sees them.
//
// Limits (issue 13 finding 5): per VM a query rate and a number of queries in flight
// (dns-limits.ts); a bounded number of upstream sockets (dns-upstream.ts); over TCP a number of
// connections per VM and in all, an idle timeout and a message size; and no reply is queued to a
// client that does not read. A query over a limit is answered REFUSED: the guest's resolver gets
// a definite answer at once instead of waiting out its timeout and retrying (which would only
// add load), and the reply is no bigger than the query and goes only to the VM that asked.
import dgram from 'node:dgram'
import net from 'node:net'
import dnsPacket from 'dns-packet'
import { DNS_LIMIT_DEFAULTS, DnsLimits, type DnsLimitsOptions, type RefusalReport } from './dns-limits.ts'
import { UpstreamBusyError, UpstreamClient } from './dns-upstream.ts'

const UPSTREAM_TIMEOUT_MS = 4000
const MAX_TCP_MESSAGE = 65535
/** Upstream queries of all VMs together (each is one socket and one timer). */
const MAX_UPSTREAM_IN_FLIGHT = 256
const MAX_TCP_PER_SOURCE = 4
const MAX_TCP_TOTAL = 64
const TCP_IDLE_MS = 10_000
/** Bytes of replies waiting for a client to read: beyond this the forwarder reads no more from it. */
const MAX_PENDING_WRITE = 64 * 1024

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
  limits?: DnsLimitsOptions
  /** Queries refused by a limit, at most once per source per interval. */
  onLimited?: (report: RefusalReport) => void
  /** Upstream DNS port (tests). */
  upstreamPort?: number
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
  private readonly limits: DnsLimits
  private readonly upstream: UpstreamClient
  private readonly tcpBySource = new Map<string, number>()
  private readonly tcpSockets = new Set<net.Socket>()
  private tcpTotal = 0
  /** UDP replies dropped because the socket's send queue was full. */
  private udpDropped = 0
  /** Queries refused because MAX_UPSTREAM_IN_FLIGHT were already out. */
  private upstreamBusy = 0

  constructor(o: DnsForwarderOptions) {
    this.o = o
    this.limits = new DnsLimits(o.limits ?? DNS_LIMIT_DEFAULTS)
    this.upstream = new UpstreamClient({ upstreams: o.upstreams, timeoutMs: UPSTREAM_TIMEOUT_MS, maxInFlight: MAX_UPSTREAM_IN_FLIGHT, port: o.upstreamPort })
  }

  async start(): Promise<void> {
    const port = this.o.port ?? 53
    const udp = dgram.createSocket('udp4')
    udp.on('message', (msg, rinfo) =>
      void this.answer(msg, rinfo.address).then((r) => {
        // dgram queues what the kernel does not take yet, without a bound: past a bound, drop.
        // A late answer after close() has no socket to go out on.
        if (!r || this.udp !== udp) return
        if (udp.getSendQueueSize() > MAX_PENDING_WRITE) this.udpDropped++
        else udp.send(r, rinfo.port, rinfo.address)
      }),
    )
    await listening(udp, (done) => udp.bind({ address: this.o.listenAddress, port }, done))
    udp.on('error', (err) => this.o.onError?.(err))
    this.udp = udp
    const tcp = net.createServer((sock) => this.serveTcp(sock))
    tcp.maxConnections = MAX_TCP_TOTAL
    await listening(tcp, (done) => tcp.listen({ host: this.o.listenAddress, port }, done))
    tcp.on('error', (err) => this.o.onError?.(err))
    this.tcp = tcp
  }

  async close(): Promise<void> {
    this.udp?.close()
    this.udp = undefined
    // Open connections would hold close() until their idle timeout.
    for (const s of this.tcpSockets) s.destroy()
    await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()))
  }

  /** A VM went away: its address may be given to another VM, which starts with its own budget. */
  forget(sourceAddress: string): void {
    this.limits.forget(sourceAddress)
  }

  /** Counters for logs and tests. */
  stats(): { refusedBySource: Record<string, number>; upstreamInFlight: number; upstreamBusy: number; tcpConnections: number; udpRepliesDropped: number } {
    return { refusedBySource: this.limits.refusals(), upstreamInFlight: this.upstream.active, upstreamBusy: this.upstreamBusy, tcpConnections: this.tcpTotal, udpRepliesDropped: this.udpDropped }
  }

  /** The reply to one query from `source`, or undefined to stay silent. */
  private async answer(query: Buffer, source: string): Promise<Buffer | undefined> {
    const admission = this.limits.admit(source)
    if (!admission.ok) {
      const report = this.limits.reportDue(source)
      if (report) this.o.onLimited?.(report)
      return refusedAnswer(query)
    }
    try {
      return await this.answerAdmitted(query, source)
    } catch (err) {
      // All upstream slots taken (counted, not logged per query: that would be a log flood), or
      // a bug: either way the VM gets an answer.
      if (err instanceof UpstreamBusyError) this.upstreamBusy++
      else this.o.onError?.(new Error(`DNS query failed: ${(err as Error).message}`))
      return refusedAnswer(query)
    } finally {
      admission.release()
    }
  }

  private async answerAdmitted(query: Buffer, source: string): Promise<Buffer | undefined> {
    const access = this.o.access(source)
    if (access.kind === 'refuse') return refusedAnswer(query)
    if (access.kind === 'any') return this.upstream.query(query)
    let questions
    try {
      questions = dnsPacket.decode(query).questions ?? []
    } catch {
      return refusedAnswer(query)
    }
    if (questions.length === 0 || !questions.every((q) => access.allowed(q.name))) return refusedAnswer(query)
    const reply = await this.upstream.query(query)
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

  /**
   * DNS over TCP: length-prefixed messages, each answered like a UDP query (and counted against
   * the same per-VM limits). A few connections per VM, an idle timeout, and no reading while
   * replies wait for the client to read them.
   */
  private serveTcp(sock: net.Socket): void {
    sock.on('error', () => {})
    const source = sock.remoteAddress?.replace(/^::ffff:/, '') ?? ''
    const mine = this.tcpBySource.get(source) ?? 0
    if (mine >= MAX_TCP_PER_SOURCE) return void sock.destroy()
    this.tcpBySource.set(source, mine + 1)
    this.tcpTotal++
    this.tcpSockets.add(sock)
    sock.once('close', () => {
      this.tcpTotal--
      this.tcpSockets.delete(sock)
      const left = (this.tcpBySource.get(source) ?? 1) - 1
      if (left > 0) this.tcpBySource.set(source, left)
      else this.tcpBySource.delete(source)
    })
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy())
    let buf = Buffer.alloc(0)
    const write = (r: Buffer) => {
      if (sock.destroyed) return
      sock.write(Buffer.concat([Buffer.from([r.length >> 8, r.length & 255]), r]))
      if (sock.writableLength > MAX_PENDING_WRITE) sock.pause()
    }
    sock.on('drain', () => sock.resume())
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      if (buf.length > 2 + MAX_TCP_MESSAGE) return void sock.destroy()
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0))
        buf = buf.subarray(2 + msg.length)
        void this.answer(Buffer.from(msg), source).then((r) => r && write(r))
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
