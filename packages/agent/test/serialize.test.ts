import { describe, expect, it } from 'vitest'
import { parseResultMessage } from '../src/handlers/run.ts'
import { loadSerializers } from '../src/run/serialize.ts'
import { wrapperSource } from '../src/run/wrappers.ts'

const { serializeError, stringify } = loadSerializers()

describe('error serialization (runs inside the user runtime)', () => {
  it('turns Errors into {name, message, stack}', () => {
    const out = serializeError(new TypeError('boom')) as Record<string, unknown>
    expect(out.name).toBe('TypeError')
    expect(out.message).toBe('boom')
    expect(typeof out.stack).toBe('string')
  })

  it('turns strings and primitives into {name: "Error", message}', () => {
    expect(serializeError('bad')).toEqual({ name: 'Error', message: 'bad' })
    expect(serializeError(42)).toEqual({ name: 'Error', message: '42' })
    expect(serializeError(undefined)).toEqual({ name: 'Error', message: 'undefined' })
  })

  it('passes other objects through as-is', () => {
    expect(serializeError({ code: 7, detail: 'x' })).toEqual({ code: 7, detail: 'x' })
    expect(serializeError([1, 2])).toEqual([1, 2])
  })
})

describe('result stringify', () => {
  it('keeps every JSON value kind', () => {
    for (const v of [42, 'x', null, [1, 2], { a: { b: true } }]) expect(JSON.parse(stringify({ result: v }))).toEqual({ result: v })
  })

  it('renders bigint as string and cycles as [Circular]', () => {
    const o: Record<string, unknown> = { n: 10n }
    o.self = o
    expect(JSON.parse(stringify(o))).toEqual({ n: '10', self: '[Circular]' })
  })
})

describe('result message parsing (agent side)', () => {
  const msg = (s: string) => ({ side: Buffer.from(s), sideTruncated: false })
  it('returns result and error only when present', () => {
    expect(parseResultMessage(msg('{"result":[1,2]}'))).toEqual({ result: [1, 2] })
    expect(parseResultMessage(msg('{"result":null}'))).toEqual({ result: null })
    expect(parseResultMessage(msg('{"error":{"name":"Error","message":"x"}}'))).toEqual({ error: { name: 'Error', message: 'x' } })
    expect(parseResultMessage(msg('{}'))).toEqual({})
    expect(parseResultMessage({ side: Buffer.alloc(0), sideTruncated: false })).toEqual({})
  })

  it('reports garbage and oversize results instead of throwing', () => {
    expect(parseResultMessage(msg('{not json')).error).toMatchObject({ name: 'ResultError' })
    expect(parseResultMessage(msg('[1]')).error).toMatchObject({ name: 'ResultError' })
    expect(parseResultMessage({ side: Buffer.from('{}'), sideTruncated: true }).error).toMatchObject({ name: 'ResultError' })
  })
})

describe('wrapper source', () => {
  it('is syntactically valid module code for both runtimes', async () => {
    for (const rt of ['node', 'deno'] as const) {
      const src = wrapperSource(rt, 'file:///nonexistent/x.js')
      // Module syntax check without running: top-level await needs an async function body.
      const body = src.replace(/^import .*$/m, '')
      expect(() => new Function(`return async () => {${body}}`)).not.toThrow()
      expect(src).toContain(JSON.stringify('file:///nonexistent/x.js'))
    }
  })
})
