// The manager's relay of a streamed exec (NDJSON OutputEvents) against a scripted, hostile agent:
// the real AgentClient over a real Unix socket with the channel resync and HTTP/2, the real
// EventRelay, and the fault mapping the API uses. Whatever the agent sends, the relay's output is
// valid events ending with exactly one exit or error event, what it holds is bounded, and a
// stream it gives up on (or whose consumer left) is cancelled at the agent.
import http2 from 'node:http2'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { OutputEvent, matches, type ErrorEvent } from '@rds/protocol'
import { AgentClient } from '../../src/runtime/agent/client.ts'
import { AgentRefusedError } from '../../src/runtime/agent/faults.ts'
import { EventRelay, MAX_EVENT_LINE_BYTES } from '../../src/runtime/agent/event-relay.ts'
import { agentFault } from '../../src/services/agent-fault.ts'
import type { ApiError } from '../../src/errors.ts'
import { answer, identity, scriptedAgent, type ScriptedChannel } from '../harness/scripted-agent.ts'

const MiB = 1024 * 1024
let agent: ScriptedChannel
let c: AgentClient
/** Per command: bytes the agent handed to the socket, and how its stream ended. */
const sent = new Map<string, number>()
const resets = new Map<string, Promise<number>>()
const blocked = new Map<string, Promise<void>>()

const line = (v: unknown) => `${JSON.stringify(v)}\n`
const exit = { type: 'exit', exitCode: 0, timedOut: false, durationMs: 5 }

/** Writes `lines` (one string each) as the reader takes them; notes when the reader first holds it back. */
function produce(stream: http2.ServerHttp2Stream, label: string, lines: Iterable<string>, end = true): void {
  let onBlocked!: () => void
  blocked.set(label, new Promise<void>((r) => (onBlocked = r)))
  const it = lines[Symbol.iterator]()
  const pump = () => {
    for (let n = it.next(); !n.done; n = it.next()) {
      if (stream.destroyed) return
      sent.set(label, (sent.get(label) ?? 0) + Buffer.byteLength(n.value))
      if (!stream.write(n.value)) {
        onBlocked()
        return void stream.once('drain', pump)
      }
    }
    if (end && !stream.destroyed) stream.end()
  }
  pump()
}

function* repeat(text: string, times: number, last?: string): Generator<string> {
  for (let i = 0; i < times; i++) yield text
  if (last !== undefined) yield last
}

beforeAll(async () => {
  agent = await scriptedAgent((req, stream) => {
    if (req.path === '/init') return answer(stream, 200, identity())
    const cmd = String((req.body as { cmd?: unknown } | undefined)?.cmd)
    if (req.path !== '/exec/stream') return answer(stream, 404, { code: 'invalid_request', message: 'no such route' })
    if (cmd === 'refuse') return answer(stream, 400, { code: 'path_not_allowed', message: 'cwd outside' })
    resets.set(cmd, new Promise((r) => stream.once('close', () => r(stream.rstCode ?? 0))))
    stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' })
    const out = (data: string) => line({ type: 'stdout', data })
    const scripts: Record<string, () => void> = {
      ok: () => produce(stream, cmd, [out('a'), line({ type: 'stderr', dataBase64: Buffer.from([0xff]).toString('base64') }), line(exit)]),
      garbage: () => produce(stream, cmd, [out('a'), 'not json\n', out('never')], false),
      'wrong-shape': () => produce(stream, cmd, [line({ type: 'stdout', data: 1 })], false),
      'both-data': () => produce(stream, cmd, [line({ type: 'stdout', data: 'a', dataBase64: 'YQ==' })], false),
      'extra-field': () => produce(stream, cmd, [line({ ...exit, code: 'x' })], false),
      'endless-line': () => produce(stream, cmd, ['{"type":"stdout","data":"', ...repeat('a'.repeat(64 * 1024), 256)], false),
      'endless-exit': () => produce(stream, cmd, ['{"type":"exit","result":"', ...repeat('a'.repeat(64 * 1024), 256)], false),
      'big-exit': () => produce(stream, cmd, [`{"type":"exit","exitCode":0,"timedOut":false,"durationMs":1,"result":"${'r'.repeat(3 * MiB)}"}\n`]),
      'agent-error': () => produce(stream, cmd, [out('a'), line({ type: 'error', code: 'internal', message: 'spawn failed' })], false),
      'foreign-code': () => produce(stream, cmd, [line({ type: 'error', code: 'pwned', message: 'x' })], false),
      'no-exit': () => produce(stream, cmd, [out('a')]),
      'after-exit': () => produce(stream, cmd, [line(exit), 'garbage after the end\n', out('late')]),
      flood: () => produce(stream, cmd, repeat(out('x'.repeat(16 * 1024)), 4096, line(exit))),
      silent: () => produce(stream, cmd, [out('a')], false),
    }
    scripts[cmd]!()
  })
  c = new AgentClient(agent.socketPath, async (call) => void (await call('init', { unixTimeMs: Date.now(), entropy: '' }, 5000)), { maxReplyBytes: 8 * MiB })
  await c.waitReady(10_000, () => true)
})
afterAll(() => {
  c?.close()
  agent?.close()
})

async function relay(cmd: string, deadlineMs = 60_000): Promise<EventRelay> {
  const { stream, cancel } = await c.openEvents('execStream', { cmd }, 10_000)
  return new EventRelay(stream, {
    route: 'execStream',
    maxExitLineBytes: c.replyCap,
    deadlineMs,
    cancel,
    describe: (fault) => {
      const e = agentFault('vm-x', fault) as ApiError
      return { type: 'error', code: e.code, message: e.message }
    },
  })
}

async function eventsOf(r: EventRelay): Promise<OutputEvent[]> {
  let text = ''
  for await (const chunk of r) text += String(chunk)
  expect(text.endsWith('\n')).toBe(true)
  const events = text.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown)
  for (const e of events) expect(matches(OutputEvent, e)).toBe(true)
  // Exactly one last event, and it is last.
  expect(events.filter((e) => (e as OutputEvent).type === 'exit' || (e as OutputEvent).type === 'error')).toHaveLength(1)
  expect(['exit', 'error']).toContain((events.at(-1) as OutputEvent).type)
  return events as OutputEvent[]
}

const NGHTTP2_CANCEL = http2.constants.NGHTTP2_CANCEL

it('passes a well-formed stream on event by event, ending at the exit', async () => {
  const events = await eventsOf(await relay('ok'))
  expect(events).toEqual([{ type: 'stdout', data: 'a' }, { type: 'stderr', dataBase64: '/w==' }, exit])
})

it('a refusal before the stream is the agent error of an ordinary reply', async () => {
  const err = await c.openEvents('execStream', { cmd: 'refuse' }, 10_000).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(AgentRefusedError)
  expect((agentFault('vm-x', err) as ApiError).code).toBe('path_not_allowed')
})

it.each([
  ['garbage', 'agent_reply_invalid'],
  ['wrong-shape', 'agent_reply_invalid'],
  ['both-data', 'agent_reply_invalid'],
  ['extra-field', 'agent_reply_invalid'],
  ['foreign-code', 'agent_reply_invalid'],
  ['endless-line', 'agent_reply_too_large'],
  ['endless-exit', 'agent_reply_too_large'],
  ['agent-error', 'agent_error'],
])('%s: the stream ends with an error event %s and the agent stream is cancelled', async (cmd, code) => {
  const events = await eventsOf(await relay(cmd))
  const last = events.at(-1) as ErrorEvent
  expect(last).toMatchObject({ type: 'error', code })
  // Nothing of what the agent sent is repeated in the sentence.
  expect(last.message).not.toMatch(/not json|pwned|aaaa/)
  expect(await resets.get(cmd)).toBe(NGHTTP2_CANCEL)
})

it('an unfinished line is held only up to its cap: an exit line up to the reply cap, any other line up to 1 MiB', async () => {
  // 16 MiB offered each; the agent could hand over only the cap plus the HTTP/2 windows.
  expect(sent.get('endless-line')!).toBeLessThan(MAX_EVENT_LINE_BYTES + 8 * MiB)
  expect(sent.get('endless-exit')!).toBeLessThan(c.replyCap + 8 * MiB)
  const big = await eventsOf(await relay('big-exit'))
  expect(big).toEqual([expect.objectContaining({ type: 'exit', result: 'r'.repeat(3 * MiB) })])
})

it('a stream that ends without an exit event ends with agent_unavailable', async () => {
  const events = await eventsOf(await relay('no-exit'))
  expect(events[0]).toEqual({ type: 'stdout', data: 'a' })
  expect(events.at(-1)).toMatchObject({ type: 'error', code: 'agent_unavailable' })
})

it('whatever follows the exit event is dropped', async () => {
  expect(await eventsOf(await relay('after-exit'))).toEqual([exit])
})

it('a consumer that does not read holds the agent back: the relay buffers a bounded amount', async () => {
  const r = await relay('flood')
  await blocked.get('flood')
  // The agent is now held by flow control; give it every chance to push more.
  await new Promise((res) => setTimeout(res, 300))
  const offered = 4096 * (16 * 1024 + 30)
  const handed = sent.get('flood')!
  console.log(`slow consumer: agent offered ${Math.round(offered / MiB)} MiB, handed over ${Math.round(handed / MiB)} MiB before the consumer read anything`)
  // HTTP/2 stream window (4 MiB) plus the relay's high-water mark and the socket's buffers.
  expect(handed).toBeLessThan(8 * MiB)
  const events = await eventsOf(r)
  expect(events).toHaveLength(4097)
})

it('a consumer that leaves cancels the agent stream', async () => {
  const r = await relay('silent')
  await new Promise<void>((res) => r.once('readable', () => res()))
  r.destroy()
  expect(await resets.get('silent')).toBe(NGHTTP2_CANCEL)
})

it('a stream without an exit by its deadline ends with agent_unavailable and is cancelled', async () => {
  const events = await eventsOf(await relay('silent', 300))
  expect(events.at(-1)).toMatchObject({ type: 'error', code: 'agent_unavailable' })
  expect(await resets.get('silent')).toBe(NGHTTP2_CANCEL)
})
