// Finding 1 of issue 13: a hostile guest agent answers with replies of any size, or never
// finishes one. The agent is root-controlled code, so a scripted agent stands in for it here:
// the real AgentClient talks to it over a real Unix socket, with the real channel resync and
// HTTP/2, exactly as it talks to QEMU's socket of a VM's control port. Every oversize or late
// reply must fail that request only; the client (and this process) keeps working.
import http2 from 'node:http2'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { AgentClient, DEFAULT_REPLY_MAX_BYTES } from '../../src/runtime/agent/client.ts'
import { AgentReplyTooLargeError, AgentUnavailableError } from '../../src/runtime/agent/faults.ts'
import { agentFault } from '../../src/services/agent-fault.ts'
import { outputEventsOf } from '../../src/runtime/agent/output-events-in.ts'
import { ApiError } from '../../src/errors.ts'
import { answer, identity, scriptedAgent, type ScriptedChannel } from '../harness/scripted-agent.ts'

const MiB = 1024 * 1024
let agent: ScriptedChannel
/** Bytes the hostile agent managed to hand to the socket, per request. */
const sent = new Map<string, number>()

/**
 * `total` bytes of padding inside `head` + `tail` (valid JSON once complete), produced as the
 * reader takes it (the agent never holds it).
 */
function streamPadded(stream: http2.ServerHttp2Stream, label: string, total: number, head: string, tail: string): void {
  const chunk = Buffer.alloc(256 * 1024, 0x61)
  stream.write(head)
  let left = total
  const pump = () => {
    while (left > 0 && !stream.destroyed) {
      const n = Math.min(left, chunk.length)
      left -= n
      sent.set(label, (sent.get(label) ?? 0) + n)
      if (!stream.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void stream.once('drain', pump)
    }
    if (!stream.destroyed) stream.end(tail)
  }
  pump()
}

/** An exec result whose stdout is `total` bytes. */
const hugeExec = (stream: http2.ServerHttp2Stream, label: string, total: number) =>
  streamPadded(stream, label, total, '{"exitCode":0,"stderr":"","timedOut":false,"stdoutTruncated":false,"stderrTruncated":false,"durationMs":1,"stdout":"', '"}')

beforeAll(async () => {
  agent = await scriptedAgent((req, stream) => {
    const json = (status: number) => stream.respond({ ':status': status, 'content-type': 'application/json' })
    if (req.path === '/init') return answer(stream, 200, identity())
    if (req.path === '/health') return answer(stream, 200, { status: 'ok', ...identity(), uptimeMs: 1 })
    const cmd = String((req.body as { cmd?: unknown } | undefined)?.cmd)
    if (req.path === '/exec' && cmd.startsWith('huge:')) {
      json(200)
      return hugeExec(stream, cmd, Number(cmd.slice('huge:'.length)))
    }
    if (req.path === '/exec' && cmd === 'late') {
      // Headers, a byte, then nothing ever again.
      json(200)
      return void stream.write('{')
    }
    if (req.path === '/files/download?path=error-huge') {
      json(500)
      return streamPadded(stream, req.path, 512 * MiB, '{"code":"internal","message":"', '"}')
    }
    if (req.path === '/files/download?path=error-late') {
      json(500)
      return void stream.write('{"code":')
    }
    if (req.path.startsWith('/processes/output?pid=1&')) {
      stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' })
      stream.write('{"type":"stdout","data":"ok","offset":0}\n')
      return void stream.end('{"type":"stdout","data":5}\n{"type":"stdout","data":"after"}\n')
    }
    if (req.path.startsWith('/processes/output?pid=2&')) {
      // Output without end, as fast as the reader lets it.
      stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' })
      const line = Buffer.from(`${JSON.stringify({ type: 'stdout', data: 'y'.repeat(60_000), offset: 0 })}\n`)
      const pump = () => {
        while (!stream.destroyed) {
          sent.set('chatty', (sent.get('chatty') ?? 0) + line.length)
          if (!stream.write(line)) return void stream.once('drain', pump)
        }
      }
      return pump()
    }
    answer(stream, 404, { code: 'invalid_request', message: 'no such route' })
  })
})
afterAll(() => agent?.close())

async function client(maxReplyBytes?: number): Promise<AgentClient> {
  const c = new AgentClient(agent.socketPath, async (call) => void (await call('init', { unixTimeMs: Date.now(), entropy: '' }, 5000)), maxReplyBytes ? { maxReplyBytes } : {})
  await c.waitReady(10_000, () => true)
  return c
}

it('a JSON reply over 512 MiB (past the longest string V8 can make) fails that request; the client and the process live on', async () => {
  const c = await client()
  const label = `huge:${600 * MiB}`
  const rssBefore = process.memoryUsage().rss
  const err = await c.call('exec', { cmd: label }, 120_000).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(AgentReplyTooLargeError)
  const apiErr = agentFault('vm-x', err) as ApiError
  expect(apiErr).toBeInstanceOf(ApiError)
  expect([apiErr.status, apiErr.code]).toEqual([502, 'agent_reply_too_large'])
  // The same session still answers: only the offending stream was cancelled.
  const h = await c.call('health', undefined, 10_000)
  expect(h.status).toBe('ok')
  console.log(`hostile agent: offered ${600} MiB, handed ${Math.round((sent.get(label) ?? 0) / MiB)} MiB to the socket before the cancel; cap ${DEFAULT_REPLY_MAX_BYTES / MiB} MiB held; RSS change ${Math.round((process.memoryUsage().rss - rssBefore) / MiB)} MiB`)
  expect(sent.get(label)!).toBeLessThan(600 * MiB)
  c.close()
}, 180_000)

it('the cap is the configured one (AGENT_REPLY_MAX_BYTES)', async () => {
  const c = await client(1 * MiB)
  await expect(c.call('exec', { cmd: `huge:${2 * MiB}` }, 30_000)).rejects.toBeInstanceOf(AgentReplyTooLargeError)
  const ok = await c.call('exec', { cmd: `huge:${MiB / 2}` }, 30_000)
  expect(ok.stdout.length).toBe(MiB / 2)
  c.close()
})

it('an init reply over the cap makes the agent unavailable, not the manager', async () => {
  const c = new AgentClient(agent.socketPath, async (call) => void (await call('exec', { cmd: `huge:${2 * MiB}` }, 5000)), { maxReplyBytes: MiB })
  await expect(c.waitReady(3000, () => true)).rejects.toBeInstanceOf(AgentUnavailableError)
  c.close()
})

it('a reply that never ends fails at its deadline', async () => {
  const c = await client()
  await expect(c.call('exec', { cmd: 'late' }, 500)).rejects.toThrow(/did not reply within 500 ms/)
  c.close()
})

it('a download error body is capped and has a deadline', async () => {
  const c = await client()
  const huge = await c.download({ path: 'error-huge' }, 60_000).catch((e: unknown) => e)
  expect(huge).toBeInstanceOf(AgentReplyTooLargeError)
  console.log(`hostile agent: download error body of 512 MiB offered, ${Math.round((sent.get('/files/download?path=error-huge') ?? 0) / 1024)} KiB handed over before the cancel (cap 64 KiB)`)
  await expect(c.download({ path: 'error-late' }, 500)).rejects.toThrow(/did not reply within 500 ms/)
  const h = await c.call('health', undefined, 10_000)
  expect(h.status).toBe('ok')
  c.close()
})

it('a process output event that breaks the protocol ends the relay with an error event, naming no guest bytes', async () => {
  const c = await client()
  const events = []
  for await (const e of outputEventsOf((await c.openStream('processOutput', { pid: 1, follow: 'true' }, 10_000)).body)) events.push(e)
  expect(events).toEqual([{ type: 'stdout', data: 'ok', offset: 0 }, { type: 'error', code: 'agent_reply_invalid', message: expect.stringContaining('/data') }])
  expect((await c.call('health', undefined, 10_000)).status).toBe('ok')
  c.close()
})

it('a process output the reader does not take stays in the agent (HTTP/2 flow control), and leaving cancels it', async () => {
  const c = await client()
  const events = outputEventsOf((await c.openStream('processOutput', { pid: 2, follow: 'true' }, 10_000)).body)
  await events.next()
  await new Promise((r) => setTimeout(r, 1000))
  const handed = sent.get('chatty') ?? 0
  await new Promise((r) => setTimeout(r, 500))
  // Nothing more once the windows are full: a few MiB at most, however long the reader waits.
  expect(sent.get('chatty')).toBe(handed)
  expect(handed).toBeLessThan(16 * MiB)
  await events.return(undefined)
  expect((await c.call('health', undefined, 10_000)).status).toBe('ok')
  c.close()
})
