import { expect, it } from 'vitest'
import { coalesceEvents, type RawWatchEvent } from '../src/worker/watch-events.ts'

const r = (name: string): RawWatchEvent => ({ kind: 'rename', name })
const c = (name: string): RawWatchEvent => ({ kind: 'change', name })

it('tells a create from a remove by what exists once the batch settled', () => {
  expect(coalesceEvents([r('a'), c('a')], [true, true])).toEqual([{ type: 'create', path: 'a' }, { type: 'write', path: 'a' }])
  expect(coalesceEvents([r('a')], [false])).toEqual([{ type: 'remove', path: 'a' }])
})

it('reports the two halves of a move as one rename', () => {
  expect(coalesceEvents([r('a'), r('b')], [false, true])).toEqual([{ type: 'rename', path: 'b', from: 'a' }])
  // A create then an unrelated remove is not a move.
  expect(coalesceEvents([r('b'), r('a')], [true, false])).toEqual([{ type: 'create', path: 'b' }, { type: 'remove', path: 'a' }])
})

it('alternates a name that came and went within one batch, ending with what is there', () => {
  expect(coalesceEvents([r('t'), c('t'), r('t')], [false, true, false])).toEqual([{ type: 'create', path: 't' }, { type: 'write', path: 't' }, { type: 'remove', path: 't' }])
  expect(coalesceEvents([r('t'), r('t'), r('t')], [true, true, true])).toEqual([{ type: 'create', path: 't' }, { type: 'remove', path: 't' }, { type: 'create', path: 't' }])
})

it('reports repeated writes to one path in a batch once', () => {
  expect(coalesceEvents([c('f'), c('f'), c('g'), c('f')], [true, true, true, true])).toEqual([{ type: 'write', path: 'f' }, { type: 'write', path: 'g' }])
})
