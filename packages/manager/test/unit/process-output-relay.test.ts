// The manager's reading of a process's output stream from a (possibly hostile) agent, and the
// attach tickets: pure logic, no VM.
import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { MAX_LINE_BYTES, outputEventsOf } from '../../src/runtime/agent/output-events-in.ts'
import { createAttachTickets } from '../../src/services/attach-tickets.ts'
import { withoutTicket } from '../../src/api/request-log.ts'

async function all(chunks: (string | Buffer)[]) {
  const source = Readable.from(chunks.map((c) => Buffer.from(c)))
  const out = []
  for await (const e of outputEventsOf(source)) out.push(e)
  return { out, source }
}

describe('output events from the agent', () => {
  it('passes checked events on, across any chunking, and stops after the exit', async () => {
    const lines = '{"type":"stdout","data":"a","offset":0}\n{"type":"stderr","dataBase64":"/w==","offset":0}\n{"type":"exit","exitCode":0,"timedOut":false,"durationMs":5}\n{"type":"stdout","data":"late"}\n'
    const { out } = await all([lines.slice(0, 7), lines.slice(7, 50), lines.slice(50)])
    expect(out).toEqual([
      { type: 'stdout', data: 'a', offset: 0 },
      { type: 'stderr', dataBase64: '/w==', offset: 0 },
      { type: 'exit', exitCode: 0, timedOut: false, durationMs: 5 },
    ])
  })

  it('ends with an error event on a line that is not JSON, not an event, or too long, and destroys the source', async () => {
    for (const bad of ['not json\n', '{"type":"stdout","data":1}\n', '{"type":"exit"}\n', `{"type":"stdout","data":"${'x'.repeat(MAX_LINE_BYTES)}"}\n`, 'x'.repeat(MAX_LINE_BYTES + 10)]) {
      const { out, source } = await all(['{"type":"stdout","data":"ok"}\n', bad, '{"type":"stdout","data":"never"}\n'])
      expect(out[0]).toEqual({ type: 'stdout', data: 'ok' })
      expect(out[1]).toMatchObject({ type: 'error', code: 'agent_reply_invalid' })
      expect(out).toHaveLength(2)
      expect(JSON.stringify(out[1])).not.toContain('xxxx')
      expect(source.destroyed).toBe(true)
    }
  })

  it('says so when the stream ends inside a line', async () => {
    const { out } = await all(['{"type":"stdout","da'])
    expect(out).toEqual([expect.objectContaining({ type: 'error', code: 'agent_reply_invalid' })])
  })
})

describe('attach tickets', () => {
  const ME = { kind: 'env-key' } as const
  it('open one attach of one process, once, before they expire', () => {
    let now = 1_000_000
    const tickets = createAttachTickets(() => now)
    const a = tickets.issue('vm-1', 7, ME)
    expect(tickets.redeem(a.ticket, 'vm-1', 8)).toBeUndefined()
    // Used up by the wrong try as well: a ticket is never guessed twice.
    expect(tickets.redeem(a.ticket, 'vm-1', 7)).toBeUndefined()
    const b = tickets.issue('vm-1', 7, ME)
    expect(tickets.redeem(b.ticket, 'vm-1', 7)).toEqual(ME)
    expect(tickets.redeem(b.ticket, 'vm-1', 7)).toBeUndefined()
    const c = tickets.issue('vm-1', 7, ME)
    now += 31_000
    expect(tickets.redeem(c.ticket, 'vm-1', 7)).toBeUndefined()
    expect(tickets.redeem('made-up', 'vm-1', 7)).toBeUndefined()
  })

  it('never reach the log', () => {
    expect(withoutTicket('/v1/vms/a/processes/1/attach?ticket=abc-DEF_1&since=0')).toBe('/v1/vms/a/processes/1/attach?ticket=[redacted]&since=0')
    expect(withoutTicket('/x?since=1&TICKET=abc')).toBe('/x?since=1&TICKET=[redacted]')
  })
})
