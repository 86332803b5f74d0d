// Asking the upstream resolvers, with a bound on what that may hold open. Each query gets its own
// UDP socket (a fresh random source port, as resolvers do against off-path answer spoofing) and a
// fresh random id; at most `maxInFlight` of them exist at once, whatever the VMs send, and each
// is closed after its answer or its timeout. A reply counts only from the upstream's address and
// port 53, with the query's id and question.
import crypto from 'node:crypto'
import dgram from 'node:dgram'

export class UpstreamBusyError extends Error {
  constructor(max: number) {
    super(`${max} upstream DNS queries already in flight`)
  }
}

export interface UpstreamOptions {
  upstreams: string[]
  /** Per upstream tried; the whole query takes at most this times the number of upstreams. */
  timeoutMs: number
  maxInFlight: number
  port?: number
}

/** Offset just past the question section, or undefined when the message has none we can read. */
export function questionEnd(msg: Buffer): number | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined
  let at = 12
  while (at < msg.length && msg[at] !== 0) {
    // No compression pointers in a query's only question.
    if ((msg[at]! & 0xc0) !== 0) return undefined
    at += msg[at]! + 1
  }
  at += 5
  return at > msg.length ? undefined : at
}

export class UpstreamClient {
  private readonly o: UpstreamOptions
  private inFlight = 0

  constructor(o: UpstreamOptions) {
    this.o = o
  }

  get active(): number {
    return this.inFlight
  }

  /** The upstream's reply with the query's own id restored, or undefined if none answered in time. */
  async query(msg: Buffer): Promise<Buffer | undefined> {
    const qEnd = questionEnd(msg)
    if (qEnd === undefined) return undefined
    if (this.inFlight >= this.o.maxInFlight) throw new UpstreamBusyError(this.o.maxInFlight)
    this.inFlight++
    try {
      const out = Buffer.from(msg)
      const id = crypto.randomInt(0, 65536)
      out.writeUInt16BE(id, 0)
      for (const upstream of this.o.upstreams) {
        const reply = await this.ask(out, qEnd, upstream)
        if (reply) {
          reply.writeUInt16BE(msg.readUInt16BE(0), 0)
          return reply
        }
      }
      return undefined
    } finally {
      this.inFlight--
    }
  }

  private ask(msg: Buffer, qEnd: number, upstream: string): Promise<Buffer | undefined> {
    const port = this.o.port ?? 53
    const question = msg.subarray(12, qEnd).toString('latin1').toLowerCase()
    return new Promise((resolve) => {
      const s = dgram.createSocket('udp4')
      const done = (r: Buffer | undefined) => {
        clearTimeout(timer)
        s.close()
        resolve(r)
      }
      const timer = setTimeout(() => done(undefined), this.o.timeoutMs)
      s.on('error', () => done(undefined))
      s.on('message', (r, rinfo) => {
        if (rinfo.address !== upstream || rinfo.port !== port || r.length < qEnd) return
        if (r.readUInt16BE(0) !== msg.readUInt16BE(0) || r.subarray(12, qEnd).toString('latin1').toLowerCase() !== question) return
        done(r)
      })
      s.send(msg, port, upstream, (err) => err && done(undefined))
    })
  }
}
