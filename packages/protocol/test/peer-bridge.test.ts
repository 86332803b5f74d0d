// Bridge frames as both ends read them: a line is a frame only when it matches its schema.
import { expect, it } from 'vitest'
import { BridgeReplyFrame, BridgeRequestFrame, jsonLine, parseFrame, PeerCallRequest } from '../src/index.ts'

const call = { alias: 'a', modulePath: '/workspace/m.ts', exportName: 'f', args: [1, { b: 2 }] }

it('reads a valid frame of each kind', () => {
  expect(parseFrame(BridgeRequestFrame, JSON.stringify({ ...call, id: 0, timeoutMs: 5 }))).toEqual({ frame: { ...call, id: 0, timeoutMs: 5 } })
  expect(parseFrame(BridgeReplyFrame, JSON.stringify({ id: 3, ok: true, result: null }))).toEqual({ frame: { id: 3, ok: true, result: null } })
  expect(parseFrame(BridgeReplyFrame, JSON.stringify({ id: 3, ok: false, code: 'peer_call_failed', message: 'no' }))).toMatchObject({ frame: { ok: false } })
  expect(parseFrame(PeerCallRequest, JSON.stringify(call))).toEqual({ frame: call })
})

it('refuses what is no frame, keeping a usable id to answer to', () => {
  expect(parseFrame(BridgeRequestFrame, '{"id":1,')).toEqual({ problem: 'not valid JSON' })
  expect(parseFrame(BridgeRequestFrame, '[{"id":1}]')).toEqual({ problem: 'not a JSON object' })
  expect(parseFrame(BridgeRequestFrame, 'null')).toEqual({ problem: 'not a JSON object' })
  expect(parseFrame(BridgeRequestFrame, JSON.stringify({ ...call, id: 4, args: {} }))).toEqual({ problem: '/args: must be array', id: 4 })
  expect(parseFrame(BridgeRequestFrame, JSON.stringify({ ...call, id: 5, exportName: 7 }))).toEqual({ problem: '/exportName: must be string', id: 5 })
  expect(parseFrame(BridgeRequestFrame, JSON.stringify({ ...call, id: 6, timeoutMs: -1 }))).toMatchObject({ id: 6 })
  for (const id of [-1, 1.5, 2 ** 53, '7', null]) expect(parseFrame(BridgeRequestFrame, JSON.stringify({ ...call, id }))).not.toHaveProperty('id')
  expect(parseFrame(BridgeReplyFrame, JSON.stringify({ id: 8, ok: 'yes' }))).toMatchObject({ id: 8 })
  expect(parseFrame(BridgeReplyFrame, JSON.stringify({ id: 9, ok: false, code: 'x' }))).toMatchObject({ id: 9 })
})

it('frames a value as one line', () => {
  const line = jsonLine({ text: 'two\nlines' })
  expect(line.indexOf('\n')).toBe(line.length - 1)
  expect(JSON.parse(line)).toEqual({ text: 'two\nlines' })
})
