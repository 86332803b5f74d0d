// The batching of allowDomains set updates (issue 13 finding 5) with a fake apply: many answers
// of many VMs become one nft transaction, one at a time, off the queue of create/delete/PATCH
// (host-network.ts; the security corpus shows the liveness with real VMs).
import { describe, expect, it } from 'vitest'
import { ResolvedBatcher, type ResolvedBatch } from '../../src/runtime/network/resolved-batch.ts'

describe('ResolvedBatcher', () => {
  it('coalesces additions of many answers and VMs into one apply, each address once per VM', async () => {
    const applied: Array<ResolvedBatch<string>> = []
    const b = new ResolvedBatcher<string>(async (batch) => {
      applied.push(batch)
      return new Map()
    }, 5)
    const waits = [
      ...Array.from({ length: 200 }, (_, i) => b.add('flooder', [{ address: `203.0.113.${i % 50}`, timeoutS: 60 + (i % 3) }])),
      b.add('quiet', [{ address: '198.51.100.2', timeoutS: 60 }]),
    ]
    await Promise.all(waits)
    expect(applied.length).toBe(1)
    expect(applied[0]!.get('flooder')!.length).toBe(50)
    expect(applied[0]!.get('flooder')!.find((e) => e.address === '203.0.113.0')!.timeoutS).toBe(62)
    expect(applied[0]!.get('quiet')).toEqual([{ address: '198.51.100.2', timeoutS: 60 }])
    expect(b.counts).toEqual({ flushes: 1, additions: 51 })
  })

  it('runs one apply at a time; what arrives meanwhile goes in the next one', async () => {
    let running = 0
    let most = 0
    let release: () => void = () => {}
    const sizes: number[] = []
    const b = new ResolvedBatcher<string>(async (batch) => {
      running++
      most = Math.max(most, running)
      sizes.push([...batch.values()].reduce((n, e) => n + e.length, 0))
      await new Promise<void>((resolve) => (release = resolve))
      running--
      return new Map()
    }, 1)
    const first = b.add('a', [{ address: '203.0.113.1', timeoutS: 60 }])
    while (sizes.length === 0) await new Promise((r) => setTimeout(r, 1))
    const later = Array.from({ length: 30 }, (_, i) => b.add('a', [{ address: `203.0.113.${100 + i}`, timeoutS: 60 }]))
    release()
    await first
    while (sizes.length < 2) await new Promise((r) => setTimeout(r, 1))
    release()
    await Promise.all(later)
    expect(sizes).toEqual([1, 30])
    expect(most).toBe(1)
  })

  it("rejects only the failed owner's waiters", async () => {
    const b = new ResolvedBatcher<string>(async () => new Map([['gone', new Error('detached')]]), 1)
    const gone = b.add('gone', [{ address: '203.0.113.1', timeoutS: 60 }])
    const ok = b.add('here', [{ address: '203.0.113.2', timeoutS: 60 }])
    await expect(gone).rejects.toThrow('detached')
    await expect(ok).resolves.toBeUndefined()
  })
})
