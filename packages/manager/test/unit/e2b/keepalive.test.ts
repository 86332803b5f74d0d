// Keepalives go in only while the source is silent, and never lose or reorder its items.
import { describe, expect, it } from 'vitest'
import { keepaliveIntervalMs, withKeepalive } from '../../../src/api/e2b/keepalive.ts'

describe('withKeepalive', () => {
  it('passes every item in order, with keepalives in the silences', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    async function* source() {
      yield 1
      await gate
      yield 2
      yield 3
    }
    const got: Array<number | 'ka'> = []
    for await (const x of withKeepalive<number | 'ka'>(source(), 5, () => 'ka')) {
      got.push(x)
      if (got.filter((g) => g === 'ka').length === 2) release()
    }
    expect(got.filter((g) => g !== 'ka')).toEqual([1, 2, 3])
    expect(got[0]).toBe(1)
    expect(got.filter((g) => g === 'ka').length).toBeGreaterThanOrEqual(2)
  })

  it('reads the SDK\'s interval in seconds, with a default', () => {
    expect(keepaliveIntervalMs('50')).toBe(50_000)
    expect(keepaliveIntervalMs(null)).toBe(50_000)
    expect(keepaliveIntervalMs('0')).toBe(50_000)
    expect(keepaliveIntervalMs('junk')).toBe(50_000)
  })
})
