import { expect, it } from 'vitest'
import { contentRange, formatRangeSpec, parseRangeHeader, parseRangeSpec, resolveRange } from '../src/index.ts'

it('parses the single byte ranges of a Range header', () => {
  expect(parseRangeHeader('bytes=0-99')).toEqual({ kind: 'from', start: 0, end: 99 })
  expect(parseRangeHeader('bytes=100-')).toEqual({ kind: 'from', start: 100 })
  expect(parseRangeHeader('bytes=-5')).toEqual({ kind: 'suffix', length: 5 })
  expect(parseRangeHeader(' Bytes = 7-7 ')).toEqual({ kind: 'from', start: 7, end: 7 })
})

it('refuses what it cannot serve: several ranges, other units, reversed or empty ranges, junk', () => {
  for (const h of ['bytes=0-1,5-6', 'items=0-1', 'bytes=5-4', 'bytes=-0', 'bytes=', 'bytes=a-b', 'bytes=--1', 'bytes=1-2-3', 'bytes=9999999999999999-']) {
    expect(parseRangeHeader(h), h).toBeUndefined()
  }
})

it('resolves a spec against the file size, clamping the end and refusing ranges past it', () => {
  expect(resolveRange({ kind: 'from', start: 6, end: 9 }, 11)).toEqual({ start: 6, end: 9, size: 11 })
  expect(resolveRange({ kind: 'from', start: 6, end: 500 }, 11)).toEqual({ start: 6, end: 10, size: 11 })
  expect(resolveRange({ kind: 'from', start: 9 }, 11)).toEqual({ start: 9, end: 10, size: 11 })
  expect(resolveRange({ kind: 'suffix', length: 5 }, 11)).toEqual({ start: 6, end: 10, size: 11 })
  expect(resolveRange({ kind: 'suffix', length: 50 }, 11)).toEqual({ start: 0, end: 10, size: 11 })
  expect(resolveRange({ kind: 'from', start: 11 }, 11)).toBeUndefined()
  expect(resolveRange({ kind: 'suffix', length: 1 }, 0)).toBeUndefined()
  expect(contentRange({ start: 6, end: 10, size: 11 })).toBe('bytes 6-10/11')
})

it('sends the spec to the agent as text that parses back to itself', () => {
  for (const spec of [{ kind: 'from', start: 3, end: 9 }, { kind: 'from', start: 3 }, { kind: 'suffix', length: 4 }] as const) {
    expect(parseRangeSpec(formatRangeSpec(spec))).toEqual(spec)
  }
})
