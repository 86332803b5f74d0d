import { describe, expect, it } from 'vitest'
import { MAX_READ_BYTES, OutputRing } from '../src/processes/output-ring.ts'

const readAll = (ring: OutputRing, since = { stdout: 0, stderr: 0 }) => {
  const cursors = { ...since }
  const reads = []
  for (let r = ring.next(cursors); r; r = ring.next(cursors)) {
    reads.push({ stream: r.stream, offset: r.offset, text: r.bytes.toString(), skipped: r.skipped })
    cursors[r.stream] = r.offset + r.bytes.length
  }
  return reads
}

describe('the replay ring', () => {
  it('replays both streams in arrival order, merging small reads of one stream', () => {
    const ring = new OutputRing(1024)
    ring.append('stdout', Buffer.from('a'))
    ring.append('stdout', Buffer.from('b'))
    ring.append('stderr', Buffer.from('E'))
    ring.append('stdout', Buffer.from('c'))
    expect(readAll(ring)).toEqual([
      { stream: 'stdout', offset: 0, text: 'ab', skipped: 0 },
      { stream: 'stderr', offset: 0, text: 'E', skipped: 0 },
      { stream: 'stdout', offset: 2, text: 'c', skipped: 0 },
    ])
    expect(readAll(ring, { stdout: 1, stderr: 1 })).toEqual([
      { stream: 'stdout', offset: 1, text: 'b', skipped: 0 },
      { stream: 'stdout', offset: 2, text: 'c', skipped: 0 },
    ])
  })

  it('keeps exactly its capacity per stream and reports what a reader missed', () => {
    const ring = new OutputRing(10)
    for (const s of ['0123456789', 'abcdef']) ring.append('stdout', Buffer.from(s))
    ring.append('stderr', Buffer.from('x'))
    expect(ring.start('stdout')).toBe(6)
    expect(ring.end('stdout')).toBe(16)
    const reads = readAll(ring)
    expect(reads[0]).toEqual({ stream: 'stdout', offset: 6, text: '6789abcdef', skipped: 6 })
    expect(reads[1]).toEqual({ stream: 'stderr', offset: 0, text: 'x', skipped: 0 })
  })

  it('bounds the bookkeeping of tiny writes and hands out at most MAX_READ_BYTES at once', () => {
    const ring = new OutputRing(4 * MAX_READ_BYTES)
    for (let i = 0; i < 100_000; i++) ring.append(i % 2 ? 'stdout' : 'stderr', Buffer.from('z'))
    // 16 Ki pieces per stream at most, however many writes came.
    expect(readAll(ring).length).toBeLessThanOrEqual(2 * 16 * 1024)
    const big = new OutputRing(4 * MAX_READ_BYTES)
    big.append('stdout', Buffer.alloc(3 * MAX_READ_BYTES, 1))
    expect(readAll(big).map((r) => r.text.length)).toEqual([MAX_READ_BYTES, MAX_READ_BYTES, MAX_READ_BYTES])
  })
})
