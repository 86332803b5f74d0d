// The node's parameter shapes turned into the API's, and the API's refusals read back: pure logic,
// the rest of the node runs in n8n's engine against real VMs (packages/manager/test/integration/n8n.test.ts).
import { describe, expect, it } from 'vitest'
import { errorBody } from '../src/nodes/RunDatSheesh/error-body.ts'
import { commaList, keyValueList, keyValueObject } from '../src/nodes/RunDatSheesh/operations/parameters.ts'

describe('parameters', () => {
  it('reads a comma-separated list, or an array from an expression', () => {
    expect(commaList(' 203.0.113.7, 198.51.100.0/24 ,,')).toEqual(['203.0.113.7', '198.51.100.0/24'])
    expect(commaList('')).toEqual([])
    expect(commaList(undefined)).toEqual([])
    expect(commaList(['a.example.com ', ''])).toEqual(['a.example.com'])
  })

  it('turns name/value rows into an env object and KEY=value entries, skipping rows without a name', () => {
    const rows = { variables: [{ name: 'A', value: '1=2' }, { name: '', value: 'x' }, { name: 'B' }] }
    expect(keyValueObject(rows)).toEqual({ A: '1=2', B: '' })
    expect(keyValueList(rows)).toEqual(['A=1=2', 'B='])
    expect(keyValueList({})).toEqual([])
    expect(keyValueObject(undefined)).toEqual({})
  })
})

describe('errorBody', () => {
  it('keeps the API\'s code and sentence, from JSON or from bytes', () => {
    const api = { code: 'invalid_cpu', message: 'Invalid cpu (maxCpu=4)' }
    expect(errorBody(api)).toMatchObject(api)
    expect(errorBody(Buffer.from(JSON.stringify({ ...api, requestId: 'r1' })))).toMatchObject({ ...api, requestId: 'r1' })
  })

  it('still gives a code and a sentence for an answer that is not the API\'s', () => {
    expect(errorBody('<html>Bad Gateway</html>')).toEqual({ code: 'unknown', message: '<html>Bad Gateway</html>' })
    expect(errorBody(Buffer.alloc(0))).toEqual({ code: 'unknown', message: 'The manager answered without a body' })
    expect(errorBody({ error: 'x' })).toMatchObject({ code: 'unknown', message: 'The manager refused the request' })
  })
})
