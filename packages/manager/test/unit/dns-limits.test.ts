// The DNS forwarder's per-VM limits (issue 13 finding 5), without a VM: the limiter with a
// controlled clock, and the forwarder itself on loopback with a stand-in upstream on another
// loopback port (a second loopback address plays a second VM).
import dgram from 'node:dgram'
import net from 'node:net'
import dnsPacket from 'dns-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { DnsForwarder, type DnsAccess } from '../../src/runtime/network/dns-forwarder.ts'
import { DnsLimits } from '../../src/runtime/network/dns-limits.ts'

describe('DnsLimits', () => {
  const o = { ratePerS: 10, burst: 20, maxInFlight: 5 }

  it('allows a burst, then the rate, per source', () => {
    const l = new DnsLimits({ ...o, maxInFlight: 1000 })
    const t = 1_000_000
    const burst = Array.from({ length: 20 }, () => l.admit('10.0.0.2', t))
    expect(burst.every((a) => a.ok)).toBe(true)
    expect(l.admit('10.0.0.2', t)).toEqual({ ok: false, reason: 'rate' })
    // Another VM has its own bucket.
    expect(l.admit('10.0.0.3', t).ok).toBe(true)
    // 100 ms at 10/s is one token.
    expect(l.admit('10.0.0.2', t + 100).ok).toBe(true)
    expect(l.admit('10.0.0.2', t + 100).ok).toBe(false)
    // Refilled, never above the burst.
    const later = Array.from({ length: 25 }, () => l.admit('10.0.0.2', t + 60_000).ok)
    expect(later.filter(Boolean).length).toBe(20)
    expect(l.refusals()['10.0.0.2']).toBe(1 + 1 + 5)
  })

  it('caps queries in flight; a release frees a slot, once', () => {
    const l = new DnsLimits(o)
    const held = Array.from({ length: 5 }, () => l.admit('10.0.0.2', 0))
    expect(l.admit('10.0.0.2', 0)).toEqual({ ok: false, reason: 'in_flight' })
    const first = held[0]!
    if (!first.ok) throw new Error('not admitted')
    first.release()
    first.release()
    expect(l.admit('10.0.0.2', 0).ok).toBe(true)
    expect(l.admit('10.0.0.2', 0).ok).toBe(false)
  })

  it('reports refusals at most once per interval per source, with the count since the last report', () => {
    const l = new DnsLimits({ ratePerS: 0.0001, burst: 10, maxInFlight: 1000 }, 10_000)
    for (let i = 0; i < 15; i++) l.admit('10.0.0.2', 0)
    expect(l.reportDue('10.0.0.2', 0)).toEqual({ source: '10.0.0.2', refused: 5, total: 5 })
    l.admit('10.0.0.2', 0)
    expect(l.reportDue('10.0.0.2', 5000)).toBeUndefined()
    l.admit('10.0.0.2', 5000)
    expect(l.reportDue('10.0.0.2', 10_000)).toEqual({ source: '10.0.0.2', refused: 2, total: 7 })
    expect(l.reportDue('10.0.0.3', 10_000)).toBeUndefined()
  })

  it('forgets a source: a VM given the address later starts with a full bucket', () => {
    const l = new DnsLimits(o)
    for (let i = 0; i < 25; i++) l.admit('10.0.0.2', 0)
    l.forget('10.0.0.2')
    expect(l.refusals()).toEqual({})
    expect(l.admit('10.0.0.2', 0).ok).toBe(true)
  })
})

describe('DnsForwarder limits (loopback)', () => {
  const closers: Array<() => unknown> = []
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c()
  })

  /** A stand-in upstream: answers every A query with 203.0.113.7 after `delayMs`. */
  async function upstream(delayMs = 0): Promise<{ port: number; seen: () => number }> {
    const s = dgram.createSocket('udp4')
    let seen = 0
    s.on('message', (m, r) => {
      seen++
      const q = dnsPacket.decode(m)
      const reply = dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.RECURSION_DESIRED, questions: q.questions, answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 60, data: '203.0.113.7' }] })
      setTimeout(() => s.send(reply, r.port, r.address), delayMs)
    })
    await new Promise<void>((resolve) => s.bind({ address: '127.0.0.1', port: 0 }, resolve))
    closers.push(() => s.close())
    return { port: s.address().port, seen: () => seen }
  }

  async function forwarder(upstreamPort: number, access: (source: string) => DnsAccess = () => ({ kind: 'any' })) {
    const limited: unknown[] = []
    // UDP and TCP on one port, as on 53.
    const port = await freePort()
    const f = new DnsForwarder({ listenAddress: '127.0.0.1', port, upstreams: ['127.0.0.1'], upstreamPort, access, limits: { ratePerS: 10, burst: 20, maxInFlight: 5 }, onLimited: (r) => limited.push(r) })
    await f.start()
    closers.push(() => f.close())
    return { f, port, limited }
  }

  it('answers a burst, then REFUSED for one source, while another source is still answered', async () => {
    const up = await upstream()
    const { f, port, limited } = await forwarder(up.port)
    const rcodes = await queryMany(port, '127.0.0.1', 100)
    const ok = rcodes.filter((r) => r === 'NOERROR').length
    const refused = rcodes.filter((r) => r === 'REFUSED').length
    console.log(`[dns-limits] one source, 100 queries at once: ${ok} answered, ${refused} REFUSED; upstream saw ${up.seen()}`)
    expect(ok + refused).toBe(100)
    expect(refused).toBeGreaterThan(0)
    // In flight 5 caps the concurrent ones; the burst of 20 caps the rest.
    expect(ok).toBeLessThanOrEqual(20)
    expect(up.seen()).toBe(ok)
    expect(await queryMany(port, '127.0.0.2', 1)).toEqual(['NOERROR'])
    expect(limited.length).toBe(1)
    expect(f.stats().refusedBySource['127.0.0.1']).toBe(refused)
  })

  it('holds at most maxInFlight upstream queries per source while the upstream is slow', async () => {
    const up = await upstream(300)
    const { f, port } = await forwarder(up.port)
    const done = queryMany(port, '127.0.0.1', 50)
    await new Promise((r) => setTimeout(r, 100))
    expect(f.stats().upstreamInFlight).toBe(5)
    const rcodes = await done
    expect(rcodes.filter((r) => r === 'NOERROR').length).toBe(5)
    expect(f.stats().upstreamInFlight).toBe(0)
  })

  it('serves TCP with a per-source connection cap', async () => {
    const up = await upstream()
    const { port } = await forwarder(up.port)
    const socks = await Promise.all(Array.from({ length: 6 }, () => tcpConnect(port)))
    closers.push(() => socks.forEach((s) => s.destroy()))
    await new Promise((r) => setTimeout(r, 100))
    expect(socks.filter((s) => s.destroyed || s.readableEnded).length).toBe(2)
    const live = socks.find((s) => !s.destroyed && !s.readableEnded)!
    const q = dnsPacket.encode({ id: 7, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'x.test' }] })
    const reply = new Promise<Buffer>((resolve) => live.once('data', resolve))
    live.write(Buffer.concat([Buffer.from([q.length >> 8, q.length & 255]), q]))
    expect(dnsPacket.decode((await reply).subarray(2)).answers![0]).toMatchObject({ data: '203.0.113.7' })
  })
})

async function freePort(): Promise<number> {
  for (;;) {
    const s = net.createServer()
    const port = await new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as net.AddressInfo).port)))
    await new Promise((r) => s.close(r))
    const u = dgram.createSocket('udp4')
    const free = await new Promise<boolean>((resolve) => {
      u.once('error', () => resolve(false))
      u.bind({ address: '127.0.0.1', port }, () => resolve(true))
    })
    u.close()
    if (free) return port
  }
}

function tcpConnect(port: number): Promise<net.Socket> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port })
    s.on('error', () => {})
    s.once('connect', () => resolve(s))
  })
}

/** `count` queries at once from one socket bound to `from`; the rcode of each reply (or "none"). */
async function queryMany(port: number, from: string, count: number): Promise<string[]> {
  const s = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => s.bind({ address: from, port: 0 }, resolve))
  const rcodes = new Map<number, string>()
  const all = new Promise<void>((resolve) => {
    s.on('message', (m) => {
      const r = dnsPacket.decode(m)
      rcodes.set(r.id!, (r as { rcode?: string }).rcode ?? 'NOERROR')
      if (rcodes.size === count) resolve()
    })
    setTimeout(resolve, 3000)
  })
  for (let i = 0; i < count; i++) s.send(dnsPacket.encode({ id: i + 1, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: `n${i}.test` }] }), port, '127.0.0.1')
  await all
  s.close()
  return Array.from({ length: count }, (_, i) => rcodes.get(i + 1) ?? 'none')
}
