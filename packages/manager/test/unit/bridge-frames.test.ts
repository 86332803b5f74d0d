// The host end of the peer bridge against a tampered guest: frames that are no BridgeRequestFrame
// are refused (answered peer_call_invalid when they carry a usable id, dropped when not) before
// the manager acts on them, and nothing breaks: the connection, the calls in flight and the next
// valid frame all go on. The guest side is scripted on a real socket, with the real resync.
import type net from 'node:net'
import { afterAll, beforeAll, expect, it } from 'vitest'
import pino from 'pino'
import { jsonLine, readLines, type PeerCallReply, type PeerCallRequest } from '@rds/protocol'
import { BridgeConnection } from '../../src/runtime/agent/bridge-connection.ts'
import { scriptedBridge, type ScriptedChannel } from '../harness/scripted-agent.ts'

let channel: ScriptedChannel
let guest: net.Socket | undefined
const fromHost: Array<Record<string, unknown>> = []
const calls: PeerCallRequest[] = []
let bridge: BridgeConnection

beforeAll(async () => {
  channel = await scriptedBridge((sock) => {
    guest = sock
    readLines(sock, 1024 * 1024, (line) => {
      if (!line.startsWith('RDS-BRIDGE/')) fromHost.push(JSON.parse(line))
    }, () => {})
  })
  const onCall = async (req: PeerCallRequest): Promise<PeerCallReply> => {
    calls.push(req)
    return { ok: true, result: { echoed: req.args } }
  }
  bridge = new BridgeConnection(channel.socketPath, onCall, { vmId: 'vm-c', log: pino({ level: 'silent' }) })
  bridge.start()
  while (!guest) await new Promise((r) => setTimeout(r, 10))
})
afterAll(() => {
  bridge?.close()
  channel?.close()
})

const until = async (f: () => boolean) => {
  for (let i = 0; i < 500 && !f(); i++) await new Promise((r) => setTimeout(r, 10))
  expect(f()).toBe(true)
}
const call = { alias: 'sdk', modulePath: '/workspace/m.ts', exportName: 'f', args: [1, 'two'] }

it('refuses malformed frames from the guest without acting on them, and serves the next valid one', async () => {
  const malformed = [
    'not json at all',
    '[1,2,3]',
    '"a string"',
    JSON.stringify({ ...call, args: undefined }), // no id: nothing to answer to
    JSON.stringify({ ...call, id: -1 }), // ids are non-negative safe integers
    JSON.stringify({ ...call, id: 2 ** 60 }),
    JSON.stringify({ ...call, id: 1.5 }),
    JSON.stringify({ ...call, id: 11, args: 'not an array' }),
    JSON.stringify({ ...call, id: 12, alias: 5 }),
    JSON.stringify({ ...call, id: 13, timeoutMs: 0 }),
    JSON.stringify({ id: 14, __proto__: { alias: 'x' } }),
  ]
  for (const line of malformed) guest!.write(`${line}\n`)
  guest!.write(jsonLine({ ...call, id: 20 }))
  await until(() => fromHost.some((f) => f.id === 20))
  // Only the valid frame reached the manager's call handling.
  expect(calls).toEqual([call])
  expect(fromHost.find((f) => f.id === 20)).toEqual({ id: 20, ok: true, result: { echoed: [1, 'two'] } })
  const refused = fromHost.filter((f) => f.id !== 20)
  expect(refused.map((f) => f.id).sort()).toEqual([11, 12, 13, 14])
  for (const f of refused) expect(f).toMatchObject({ ok: false, code: 'peer_call_invalid', message: expect.stringMatching(/^not a peer call frame \(/) })
  expect(refused.find((f) => f.id === 11)!.message).toBe('not a peer call frame (/args: must be array)')
})

it('keeps the connection: a later call on it is answered', async () => {
  fromHost.length = 0
  guest!.write(jsonLine({ ...call, id: 21, args: [] }))
  await until(() => fromHost.length === 1)
  expect(fromHost[0]).toEqual({ id: 21, ok: true, result: { echoed: [] } })
})
