import { describe, expect, it } from 'vitest'
import { chunkBytes, OutputChunker, type OutputChunkEvent } from '../src/output-events.ts'

const bytesOf = (events: OutputChunkEvent[]) => Buffer.concat(events.map(chunkBytes))

describe('OutputChunker', () => {
  it('sends valid UTF-8 as text and counts offsets in bytes', () => {
    const c = new OutputChunker('stdout')
    expect(c.push(Buffer.from('héllo'), true)).toEqual([{ type: 'stdout', data: 'héllo', offset: 0 }])
    expect(c.push(Buffer.from('!'), true)).toEqual([{ type: 'stdout', data: '!', offset: 6 }])
  })

  it('carries a character cut between reads to the next event', () => {
    const euro = Buffer.from('a€b') // 61 e2 82 ac 62
    const c = new OutputChunker('stderr')
    const first = c.push(euro.subarray(0, 2))
    const second = c.push(euro.subarray(2, 3))
    const third = c.push(euro.subarray(3))
    expect(first).toEqual([{ type: 'stderr', data: 'a' }])
    expect(second).toEqual([])
    expect(third).toEqual([{ type: 'stderr', data: '€b' }])
  })

  it('sends bytes that are not UTF-8 as base64, losing none', () => {
    const raw = Buffer.from([0xff, 0xfe, 0x41, 0x80])
    const c = new OutputChunker('stdout')
    const events = [...c.push(raw), ...c.flush()]
    expect(events.every((e) => e.data === undefined || e.dataBase64 === undefined)).toBe(true)
    expect(bytesOf(events)).toEqual(raw)
    expect(events[0]!.dataBase64).toBeDefined()
  })

  it('flushes an unfinished character at the end as base64', () => {
    const c = new OutputChunker('stdout', 10)
    expect(c.push(Buffer.from([0x41, 0xf0, 0x9f]), true)).toEqual([{ type: 'stdout', data: 'A', offset: 10 }])
    expect(c.flush(true)).toEqual([{ type: 'stdout', dataBase64: Buffer.from([0xf0, 0x9f]).toString('base64'), offset: 11 }])
  })

  it('round-trips random bytes split at random points', () => {
    for (let round = 0; round < 50; round++) {
      const text = Buffer.from(Array.from({ length: 200 }, () => (Math.random() < 0.5 ? 'x' : Math.random() < 0.5 ? 'ß' : '🙂')).join(''))
      const noisy = Math.random() < 0.3 ? Buffer.concat([text, Buffer.from([0xc3])]) : text
      const c = new OutputChunker('stdout')
      const events: OutputChunkEvent[] = []
      for (let i = 0; i < noisy.length; ) {
        const n = 1 + Math.floor(Math.random() * 7)
        events.push(...c.push(noisy.subarray(i, i + n), true))
        i += n
      }
      events.push(...c.flush(true))
      expect(bytesOf(events)).toEqual(noisy)
      let at = 0
      for (const e of events) {
        expect(e.offset).toBe(at)
        at += chunkBytes(e).length
      }
    }
  })
})
