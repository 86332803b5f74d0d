import { HTTP2_PREFACE, ackLine, syncLine } from '@rds/protocol'
import { describe, expect, it } from 'vitest'
import { scanHandshake } from '../src/transport/resync.ts'

const b = (s: string) => Buffer.from(s, 'latin1')

describe('resync scanner', () => {
  it('answers every SYNC and drops stale bytes before the preface', () => {
    const r = scanHandshake(b(`stale-goaway${syncLine('h-1')}junk${syncLine('h-2')}${HTTP2_PREFACE}\r\nSM\r\n\r\nFRAMES`))
    expect(r.acks).toEqual([ackLine('h-1'), ackLine('h-2')])
    expect(r.rest?.toString('latin1')).toBe(`${HTTP2_PREFACE}\r\nSM\r\n\r\nFRAMES`)
  })

  it('keeps a partial SYNC line or preface for the next chunk', () => {
    const line = syncLine('tok')
    const r1 = scanHandshake(b(`xx${line.slice(0, 5)}`))
    expect(r1.acks).toEqual([])
    expect(r1.rest).toBeUndefined()
    const r2 = scanHandshake(Buffer.concat([r1.pending, b(`${line.slice(5)}PRI * HT`)]))
    expect(r2.acks).toEqual([ackLine('tok')])
    const r3 = scanHandshake(Buffer.concat([r2.pending, b('TP/2.0\r\n\r\nSM')]))
    expect(r3.rest?.toString('latin1')).toBe(`${HTTP2_PREFACE}\r\nSM`)
  })

  it('does not acknowledge malformed tokens', () => {
    expect(scanHandshake(b(`${syncLine('bad token')}`)).acks).toEqual([])
    expect(scanHandshake(b(`${syncLine('')}`)).acks).toEqual([])
  })

  it('a preface before a SYNC wins (the host never sends SYNC after its preface)', () => {
    const r = scanHandshake(b(`${HTTP2_PREFACE}${syncLine('x')}`))
    expect(r.acks).toEqual([])
    expect(r.rest?.length).toBeGreaterThan(0)
  })
})
