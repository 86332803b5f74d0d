// The guest end of the peer bridge without a VM: a socket pair stands in for the virtio port.
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ackLine, BRIDGE_PREFACE, syncLine } from '@rds/protocol'
import { BridgeRelay, parseRequest } from '../src/peers/bridge-relay.ts'

let dir: string
let server: net.Server
const accepted: net.Socket[] = []

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-relay-'))
  server = net.createServer((s) => accepted.push(s))
  await new Promise<void>((r) => server.listen(path.join(dir, 'pair.sock'), r))
})
afterAll(() => {
  server.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** [relay end, host end] of a connected stream. */
async function pair(): Promise<[net.Socket, net.Socket]> {
  const n = accepted.length
  const a = net.connect(path.join(dir, 'pair.sock'))
  await new Promise((r) => a.once('connect', r))
  while (accepted.length === n) await new Promise((r) => setTimeout(r, 5))
  return [a, accepted[n]!]
}

const lines = (sock: net.Socket) => {
  const got: string[] = []
  let buf = ''
  sock.on('data', (d) => {
    buf += d
    let i: number
    while ((i = buf.indexOf('\n')) >= 0) {
      got.push(buf.slice(0, i))
      buf = buf.slice(i + 1)
    }
  })
  return got
}
const until = async (f: () => boolean) => {
  while (!f()) await new Promise((r) => setTimeout(r, 5))
}
const req = { alias: 'a', modulePath: '/workspace/m.ts', exportName: 'f', args: [1] }

it('answers without a manager after the wait instead of hanging', async () => {
  const relay = new BridgeRelay(50)
  expect(await relay.call(req)).toEqual({ ok: false, code: 'peer_bridge_unavailable', message: 'the peer bridge is not connected to the manager' })
})

/** A relay attached to a host end, with one call sent and its frame read by the host. */
async function callInFlight() {
  const relay = new BridgeRelay(1000)
  const [mine, host] = await pair()
  relay.attach(mine)
  const got = lines(host)
  const call = relay.call(req)
  await until(() => got.length === 1)
  return { relay, host, call, frame: JSON.parse(got[0]!) as { id: number } }
}

it('relays a call with its id, ignores repeated prefaces, and matches the reply', async () => {
  const { host, call, frame } = await callInFlight()
  expect(frame).toEqual({ ...req, id: frame.id })
  host.write(BRIDGE_PREFACE)
  host.write(JSON.stringify({ id: frame.id + 1000, ok: true, result: 'not mine' }) + '\n')
  host.write(JSON.stringify({ id: frame.id, ok: true, result: { v: 2 } }) + '\n')
  expect(await call).toEqual({ ok: true, result: { v: 2 } })
  host.destroy()
})

it('fails calls in flight when the manager connection drops', async () => {
  const { host, call } = await callInFlight()
  host.destroy()
  const r = await call
  expect(r).toMatchObject({ ok: false, code: 'peer_bridge_unavailable' })
})

it('answers a new host resyncing on a connection it never saw close, and fails the calls of the host before it', async () => {
  // A VM restored from a snapshot taken while the bridge was up: its relay is still attached when
  // the new host's SYNC lines arrive on the same port.
  const { relay, host, call } = await callInFlight()
  const got = lines(host)
  host.write(syncLine('new-host-1'))
  host.write(syncLine('bad token'))
  host.write(syncLine('new-host-2'))
  expect(await call).toEqual({ ok: false, code: 'peer_bridge_unavailable', message: 'the manager reconnected the bridge during the call; it may or may not have run' })
  await until(() => got.length === 2)
  expect(got.map((l) => `${l}\n`)).toEqual([ackLine('new-host-1'), ackLine('new-host-2')])
  // The new host's preface, then calls and replies, on the same connection.
  host.write(BRIDGE_PREFACE)
  const next = relay.call(req)
  await until(() => got.length === 3)
  const { id } = JSON.parse(got[2]!) as { id: number }
  host.write(JSON.stringify({ id, ok: true, result: 'from the new host' }) + '\n')
  expect(await next).toEqual({ ok: true, result: 'from the new host' })
  host.destroy()
})

it('drops reply lines from the host that are no reply frame, and still matches the real reply', async () => {
  const { host, call, frame } = await callInFlight()
  const { id } = frame
  for (const bad of ['garbage', '[]', JSON.stringify({ id, ok: 'yes' }), JSON.stringify({ id, ok: false, code: 'x' }), JSON.stringify({ id: -1, ok: true })]) host.write(`${bad}\n`)
  host.write(JSON.stringify({ id, ok: false, code: 'peer_call_failed', message: 'it threw' }) + '\n')
  expect(await call).toEqual({ ok: false, code: 'peer_call_failed', message: 'it threw' })
  host.destroy()
})

it('checks a proxy request with the protocol schema and forwards only its known fields', () => {
  expect(parseRequest(JSON.stringify({ ...req, timeoutMs: 5, id: 99, extra: 'dropped' }))).toEqual({ ...req, timeoutMs: 5 })
  expect(parseRequest('{')).toBe('not a peer call request (not valid JSON)')
  expect(parseRequest('[1]')).toBe('not a peer call request (not a JSON object)')
  expect(parseRequest(JSON.stringify({ ...req, args: 'x' }))).toBe('not a peer call request (/args: must be array)')
  expect(parseRequest(JSON.stringify({ ...req, timeoutMs: 0 }))).toBe('not a peer call request (/timeoutMs: must be >= 1)')
})
