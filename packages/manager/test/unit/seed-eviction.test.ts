import { describe, expect, it } from 'vitest'
import { seedKey, seedsToDrop, type SeedUse } from '../../src/services/seed-eviction.ts'

const template = { cpu: 1, memMb: 256 }
const seed = (cpu: number, memMb: number, lastUsedAt: string | null, status: SeedUse['status'] = 'ready'): SeedUse => ({ cpu, memMb, status, lastUsedAt })
const T = seed(1, 256, '2026-01-01T00:00:00.000Z')

describe('seedsToDrop', () => {
  it('keeps everything up to the max, counting the template even before its seed exists', () => {
    expect(seedsToDrop([T, seed(1, 512, 'a'), seed(2, 512, 'b')], { template, max: 3, keep: [] })).toEqual([])
    expect(seedsToDrop([seed(1, 512, 'a'), seed(2, 512, 'b')], { template, max: 3, keep: [] })).toEqual([])
    expect(seedsToDrop([seed(1, 512, 'a'), seed(2, 512, 'b')], { template, max: 2, keep: [] })).toEqual([{ cpu: 1, memMb: 512 }])
  })

  it('drops the least recently used other shape, never the template or the one just built', () => {
    const rows = [T, seed(1, 512, '2026-01-03T00:00:00.000Z'), seed(2, 512, '2026-01-02T00:00:00.000Z'), seed(1, 320, '2026-01-04T00:00:00.000Z')]
    expect(seedsToDrop(rows, { template, max: 3, keep: [{ cpu: 1, memMb: 320 }] })).toEqual([{ cpu: 2, memMb: 512 }])
    // The template is the oldest here and still stays.
    expect(seedsToDrop(rows, { template, max: 2, keep: [{ cpu: 1, memMb: 320 }] })).toEqual([{ cpu: 2, memMb: 512 }, { cpu: 1, memMb: 512 }])
  })

  it('with a max of 1 only the template is kept', () => {
    expect(seedsToDrop([T, seed(1, 512, 'z'), seed(2, 512, 'y')], { template, max: 1, keep: [] })).toEqual([{ cpu: 2, memMb: 512 }, { cpu: 1, memMb: 512 }])
  })

  it('gives up seeds without a usable snapshot before working ones, and shapes being built never', () => {
    const rows = [T, seed(1, 512, '2026-01-01T00:00:00.000Z'), seed(2, 512, null, 'failed'), seed(1, 384, null, 'pending'), seed(1, 320, '2026-01-09T00:00:00.000Z')]
    expect(seedsToDrop(rows, { template, max: 3, keep: [{ cpu: 1, memMb: 384 }] })).toEqual([{ cpu: 2, memMb: 512 }, { cpu: 1, memMb: 512 }])
  })

  it('after a failed build only other failures go: a failure never costs a working seed', () => {
    const rows = [T, seed(1, 512, 'a'), seed(2, 512, 'b'), seed(1, 320, null, 'failed')]
    expect(seedsToDrop(rows, { template, max: 3, keep: [{ cpu: 1, memMb: 320 }], onlyUnusable: true })).toEqual([])
    const withOld = [...rows, seed(2, 256, 'c', 'failed')]
    expect(seedsToDrop(withOld, { template, max: 3, keep: [{ cpu: 1, memMb: 320 }], onlyUnusable: true })).toEqual([{ cpu: 2, memMb: 256 }])
  })
})

it('one build key per image and shape', () => {
  expect(seedKey('img-a', { cpu: 1, memMb: 256 })).not.toBe(seedKey('img-a', { cpu: 2, memMb: 256 }))
  expect(seedKey('img-a', { cpu: 1, memMb: 256 })).not.toBe(seedKey('img-b', { cpu: 1, memMb: 256 }))
  expect(seedKey('img-a', { cpu: 1, memMb: 256 })).toBe(seedKey('img-a', { memMb: 256, cpu: 1 }))
})
