// The undo stack of multi-step operations (runtime/cleanup.ts): what a failed create relies on
// to leave nothing behind.
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { Cleanup } from '../../src/runtime/cleanup.ts'

describe('Cleanup', () => {
  it('undoes newest first, each step once it finished the one before', async () => {
    const order: string[] = []
    const c = new Cleanup()
    c.add('row', () => void order.push('row'))
    c.add('disk', async () => {
      await sleep(20)
      order.push('disk')
    })
    c.add('process', () => void order.push('process'))
    expect(await c.run()).toEqual([])
    expect(order).toEqual(['process', 'disk', 'row'])
  })

  it('a failing step, thrown or rejected, does not stop the others; its error is named', async () => {
    const done: string[] = []
    const c = new Cleanup()
    c.add('row', () => void done.push('row'))
    c.add('tap', () => {
      throw new Error('device busy')
    })
    c.add('disk', () => void done.push('disk'))
    c.add('process', async () => {
      throw new Error('no such process')
    })
    expect(await c.run()).toEqual(['process: no such process', 'tap: device busy'])
    expect(done).toEqual(['disk', 'row'])
  })

  it('commit forgets every step: nothing is undone', async () => {
    const done: string[] = []
    const c = new Cleanup()
    c.add('row', () => void done.push('row'))
    c.add('disk', () => void done.push('disk'))
    c.commit()
    expect(await c.run()).toEqual([])
    expect(done).toEqual([])
    // Steps added after a commit belong to the next operation and are undone as usual.
    c.add('snapshot', () => void done.push('snapshot'))
    await c.run()
    expect(done).toEqual(['snapshot'])
  })

  it('runs each step once: a second run has nothing left to undo', async () => {
    let count = 0
    const c = new Cleanup()
    c.add('row', () => void count++)
    await c.run()
    expect(await c.run()).toEqual([])
    expect(count).toBe(1)
  })
})
