// The response validator of the test harness (harness/openapi-responses.ts), on a made-up
// document: it must fail what does not match, or it proves nothing about the real one.
import { describe, expect, it } from 'vitest'
import { enforce, OpenApiResponses, type OpenApiDocument } from '../harness/openapi-responses.ts'

const error = { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } }
const thing = {
  type: 'object',
  required: ['id', 'state', 'createdAt', 'note'],
  properties: {
    id: { type: 'string' },
    state: { type: 'string', enum: ['RUNNING', 'STOPPED'] },
    createdAt: { type: 'string', format: 'date-time' },
    note: { type: 'string', nullable: true },
  },
}
const json = (schema: object) => ({ content: { 'application/json': { schema } } })

const doc: OpenApiDocument = {
  paths: {
    '/v1/things': { get: { responses: { 200: json({ type: 'array', items: thing }) } }, post: { responses: { 201: json(thing), 400: json(error) } } },
    '/v1/things/{id}': { get: { responses: { 200: json(thing), 404: json(error) } }, delete: { responses: { 204: {}, '4XX': json(error) } } },
    '/v1/things/special': { get: { responses: { 200: json({ type: 'object', required: ['special'], properties: { special: { type: 'boolean' } } }) } } },
    '/v1/things/{id}/download': { get: { responses: { 200: { content: { 'application/gzip': { schema: { type: 'string', format: 'binary' } } } }, 404: { content: { 'application/gzip': { schema: error } } } } } },
  },
}
const v = new OpenApiResponses(doc)
const JSON_TYPE = 'application/json; charset=utf-8'
const good = { id: 'a', state: 'RUNNING', createdAt: '2026-01-01T00:00:00.000Z', note: null }
const body = (o: unknown) => JSON.stringify(o)

describe('OpenApiResponses', () => {
  it('accepts what the document describes, query strings and nullable fields included', () => {
    expect(v.check('GET', '/v1/things/abc?x=1', 200, JSON_TYPE, body(good))).toEqual({ kind: 'ok', route: 'GET /v1/things/{id}' })
    expect(v.check('get', '/v1/things', 200, JSON_TYPE, body([good, { ...good, note: 'n' }]))).toMatchObject({ kind: 'ok' })
    expect(v.check('DELETE', '/v1/things/abc', 204, undefined, '')).toMatchObject({ kind: 'ok' })
    expect(v.check('GET', '/v1/things/abc/download', 200, 'application/gzip', undefined)).toMatchObject({ kind: 'ok' })
  })

  it('fails a body that does not match: enum, format, null, missing field, wrong type', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ ...good, state: 'running' }, /body\/state must be equal to one of the allowed values/],
      [{ ...good, createdAt: 'yesterday' }, /body\/createdAt must match format "date-time"/],
      [{ ...good, id: null }, /body\/id must be string/],
      [{ id: 'a', state: 'RUNNING', createdAt: good.createdAt }, /body must have required property 'note'/],
      [[good], /body must be object/],
    ]
    for (const [b, problem] of cases) {
      const r = v.check('GET', '/v1/things/abc', 200, JSON_TYPE, body(b))
      expect(r).toMatchObject({ kind: 'mismatch', route: 'GET /v1/things/{id}' })
      expect(r.kind === 'mismatch' && r.problem).toMatch(problem)
    }
    expect(v.check('GET', '/v1/things', 200, JSON_TYPE, body([good, { ...good, state: 'X' }]))).toMatchObject({ kind: 'mismatch', problem: expect.stringMatching(/body\/1\/state/) })
  })

  it('checks error bodies against their status, a range (4XX) included', () => {
    expect(v.check('POST', '/v1/things', 400, JSON_TYPE, body({ code: 'bad', message: 'no' }))).toMatchObject({ kind: 'ok' })
    expect(v.check('POST', '/v1/things', 400, JSON_TYPE, body({ error: 'no' }))).toMatchObject({ kind: 'mismatch', problem: expect.stringMatching(/required property 'code'/) })
    expect(v.check('DELETE', '/v1/things/a', 409, JSON_TYPE, body({ code: 'busy', message: 'in use' }))).toMatchObject({ kind: 'ok' })
    expect(v.check('DELETE', '/v1/things/a', 409, JSON_TYPE, body({ code: 1, message: 'in use' }))).toMatchObject({ kind: 'mismatch' })
  })

  it('fails a media type the document does not give for that status, and a missing body', () => {
    expect(v.check('GET', '/v1/things/a/download', 404, JSON_TYPE, body({ code: 'vm_not_found', message: 'x' }))).toEqual({
      kind: 'mismatch',
      route: 'GET /v1/things/{id}/download',
      problem: '404 answered application/json; documented as application/gzip',
    })
    expect(v.check('GET', '/v1/things/a', 200, 'text/plain', 'hello')).toMatchObject({ kind: 'mismatch', problem: '200 answered text/plain; documented as application/json' })
    expect(v.check('GET', '/v1/things/a', 200, undefined, '')).toMatchObject({ kind: 'mismatch', problem: '200 answered with an empty body; documented as application/json' })
    expect(v.check('GET', '/v1/things/a', 200, JSON_TYPE, '{"id":')).toMatchObject({ kind: 'mismatch', problem: expect.stringMatching(/not JSON/) })
  })

  it('names what the document does not describe instead of passing or failing it', () => {
    expect(v.check('GET', '/v1/things/a', 500, JSON_TYPE, body({ code: 'internal', message: 'x' }))).toEqual({ kind: 'undocumented', route: 'GET /v1/things/{id}', what: 'status 500 is not documented (documented: 200, 404)' })
    expect(v.check('PUT', '/v1/things/a', 200, JSON_TYPE, '{}')).toEqual({ kind: 'undocumented', route: 'PUT /v1/things/{id}', what: 'no such operation in the document' })
    expect(v.check('GET', '/v1/nothing', 404, JSON_TYPE, '{}')).toEqual({ kind: 'undocumented', route: 'GET /v1/nothing', what: 'no such path in the document' })
  })

  it('prefers a literal path to a parameter', () => {
    expect(v.routeOf('/v1/things/special')).toBe('/v1/things/special')
    expect(v.routeOf('/v1/things/other')).toBe('/v1/things/{id}')
    expect(v.routeOf('/v1/things/a/b')).toBeUndefined()
    expect(v.check('GET', '/v1/things/special', 200, JSON_TYPE, body(good))).toMatchObject({ kind: 'mismatch', route: 'GET /v1/things/special' })
  })

  it('enforce: a mismatch throws with route, status and problem; a gap does not', () => {
    const r = v.check('GET', '/v1/things/abc', 200, JSON_TYPE, body({ ...good, state: 'x' }))
    expect(() => enforce(r, 200, body({ ...good, state: 'x' }))).toThrow(/the response to GET \/v1\/things\/\{id\} does not match \/openapi.json: 200 body does not match its schema: body\/state/)
    expect(() => enforce(v.check('GET', '/v1/things/a', 500, JSON_TYPE, '{}'), 500, '{}')).not.toThrow()
  })
})
