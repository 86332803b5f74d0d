// The E2B layer's HTTP surface without VMs (app.inject on the real app): the control plane's
// auth and E2B-shaped errors, the header routing of envd requests and their per-sandbox tokens,
// and the 502 for a request that names a sandbox but no port.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FastifyInstance } from 'fastify'
import { envdAccessTokenFor } from '../../../src/api/e2b/access-token.ts'
import { e2bRewriteUrl, ENVD_PREFIX, INTERPRETER_PREFIX, PORT_PREFIX } from '../../../src/api/e2b/envd-routes.ts'
import { testApp } from '../../harness/app.ts'

let app: FastifyInstance
let close: () => Promise<void>
const KEY = 'unit-test-key-e2b'
const key = { 'x-api-key': KEY }

beforeAll(async () => {
  ;({ app, close } = await testApp(KEY))
})
afterAll(() => close())

describe('control plane', () => {
  it('refuses every verb without a valid key, in E2B\'s error shape', async () => {
    const calls = [
      ['POST', '/v2/sandboxes'],
      ['POST', '/sandboxes'],
      ['GET', '/v2/sandboxes'],
      ['GET', '/sandboxes'],
      ['GET', '/sandboxes/x'],
      ['DELETE', '/sandboxes/x'],
      ['POST', '/sandboxes/x/timeout'],
      ['POST', '/sandboxes/x/pause'],
      ['POST', '/sandboxes/x/connect'],
      ['POST', '/v2/sandboxes/x/connect'],
    ] as const
    for (const [method, url] of calls) {
      for (const headers of [{}, { 'x-api-key': 'wrong' }]) {
        const r = await app.inject({ method, url, headers, payload: method === 'POST' ? {} : undefined })
        expect(r.statusCode, `${method} ${url}`).toBe(401)
        expect(r.json()).toMatchObject({ code: 401, error_code: 'unauthorized' })
      }
    }
  })

  it('answers 404 {code: 404} for a sandbox that does not exist', async () => {
    for (const [method, url] of [['GET', '/sandboxes/nope'], ['DELETE', '/sandboxes/nope'], ['POST', '/sandboxes/nope/pause'], ['POST', '/v2/sandboxes/nope/connect']] as const) {
      const r = await app.inject({ method, url, headers: key, payload: method === 'POST' ? { timeout: 10 } : undefined })
      expect(r.statusCode, `${method} ${url}`).toBe(404)
      expect(r.json()).toMatchObject({ code: 404, error_code: 'vm_not_found' })
      expect(typeof r.json().message).toBe('string')
    }
  })

  it('validates create: bad timeout, bad metadata, unknown template', async () => {
    const bad = [{ templateID: 'base', timeout: -5 }, { templateID: 'base', timeout: 86_401 }, { templateID: 'base', metadata: { a: 1 } }, { templateID: 'base', envVars: { 'no-dash': 'x' } }]
    // The JS SDK creates with /v2/sandboxes, the Python SDK (its wire, from E2B's spec) with /sandboxes.
    for (const url of ['/v2/sandboxes', '/sandboxes']) {
      for (const payload of bad) {
        const r = await app.inject({ method: 'POST', url, headers: key, payload })
        expect(r.statusCode, `${url} ${JSON.stringify(payload)}`).toBe(400)
        expect(r.json().code).toBe(400)
      }
      const unknown = await app.inject({ method: 'POST', url, headers: key, payload: { templateID: 'no-such-image' } })
      expect(unknown.statusCode).toBe(404)
      expect(unknown.json()).toMatchObject({ code: 404, error_code: 'image_not_found' })
    }
  })

  it('lists nothing on an empty manager, with both list routes', async () => {
    for (const url of ['/v2/sandboxes', '/sandboxes', '/v2/sandboxes?state=running,paused&metadata=a%3Db']) {
      const r = await app.inject({ method: 'GET', url, headers: key })
      expect(r.statusCode, url).toBe(200)
      expect(r.json()).toEqual([])
    }
    expect((await app.inject({ method: 'GET', url: '/v2/sandboxes?state=gone', headers: key })).statusCode).toBe(400)
  })

  it('stays out of our OpenAPI document', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, unknown> }
    expect(Object.keys(doc.paths).filter((p) => p.includes('sandboxes') || p.includes('__e2b'))).toEqual([])
  })
})

describe('envd routing', () => {
  it('rewrites only requests naming a sandbox', () => {
    expect(e2bRewriteUrl({ url: '/v1/vms', headers: {} })).toBe('/v1/vms')
    expect(e2bRewriteUrl({ url: '/files?path=a', headers: { 'e2b-sandbox-id': 's', 'e2b-sandbox-port': '49983' } })).toBe(`${ENVD_PREFIX}/files?path=a`)
    expect(e2bRewriteUrl({ url: '/v1/vms', headers: { 'e2b-sandbox-id': 's', 'e2b-sandbox-port': '49983' } })).toBe(`${ENVD_PREFIX}/v1/vms`)
    expect(e2bRewriteUrl({ url: '/', headers: { 'e2b-sandbox-id': 's', 'e2b-sandbox-port': '8080' } })).toBe(`${PORT_PREFIX}/`)
    // Host `49983-<id>.<domain>`: the same as the headers, which it then carries.
    const viaHost = { url: '/health', headers: { host: '49983-sbx.localhost:3000' } as Record<string, string> }
    expect(e2bRewriteUrl(viaHost, (h) => (h === '49983-sbx.localhost:3000' ? { id: 'sbx', port: '49983' } : undefined))).toBe(`${ENVD_PREFIX}/health`)
    expect(viaHost.headers).toMatchObject({ 'e2b-sandbox-id': 'sbx', 'e2b-sandbox-port': '49983' })
    expect(e2bRewriteUrl({ url: '/v1/vms', headers: { host: 'localhost:3000' } }, () => undefined)).toBe('/v1/vms')
    // The code interpreter's port is the manager's too, by header or by Host.
    expect(e2bRewriteUrl({ url: '/execute', headers: { 'e2b-sandbox-id': 's', 'e2b-sandbox-port': '49999' } })).toBe(`${INTERPRETER_PREFIX}/execute`)
    const interpHost = { url: '/contexts', headers: { host: '49999-sbx.localhost:3000' } as Record<string, string> }
    expect(e2bRewriteUrl(interpHost, (h) => (h === '49999-sbx.localhost:3000' ? { id: 'sbx', port: '49999' } : undefined))).toBe(`${INTERPRETER_PREFIX}/contexts`)
    expect(interpHost.headers).toMatchObject({ 'e2b-sandbox-id': 'sbx', 'e2b-sandbox-port': '49999' })
    // A Host for a port we do not serve is left to the preview front door.
    expect(e2bRewriteUrl({ url: '/', headers: { host: '8080-sbx.localhost:3000' } }, () => ({ id: 'sbx', port: '8080' }))).toBe('/')
  })

  const envd = (id: string, extra: Record<string, string> = {}) => ({ 'e2b-sandbox-id': id, 'e2b-sandbox-port': '49983', ...extra })

  it('needs the sandbox\'s own access token (or an API key), never another sandbox\'s', async () => {
    for (const headers of [envd('sbx-a'), envd('sbx-a', { 'x-access-token': 'wrong' }), envd('sbx-a', { 'x-access-token': envdAccessTokenFor(KEY, 'sbx-b') }), envd('sbx-a', { 'x-api-key': 'wrong' })]) {
      const r = await app.inject({ method: 'GET', url: '/health', headers })
      expect(r.statusCode).toBe(401)
      expect(r.json()).toMatchObject({ code: 401, error_code: expect.stringMatching(/^(e2b_access_token_invalid|unauthorized)$/) })
    }
    expect((await app.inject({ method: 'GET', url: '/health', headers: envd('sbx-a', { 'x-access-token': envdAccessTokenFor(KEY, 'sbx-a') }) })).statusCode).toBe(204)
    expect((await app.inject({ method: 'GET', url: '/health', headers: envd('sbx-a', key) })).statusCode).toBe(204)
  })

  it('never lets a sandbox header reach our own routes', async () => {
    // (A /v1 path would be checked against our OpenAPI document by the harness; /openapi.json is ours too.)
    expect((await app.inject({ method: 'GET', url: '/openapi.json' })).statusCode).toBe(200)
    const r = await app.inject({ method: 'GET', url: '/openapi.json', headers: envd('sbx-a', key) })
    expect(r.statusCode).toBe(404)
    expect(r.json()).not.toHaveProperty('paths')
  })

  it('speaks Connect with the JSON codec: a missing VM is not_found', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/filesystem.Filesystem/Stat',
      headers: envd('sbx-a', { 'x-access-token': envdAccessTokenFor(KEY, 'sbx-a'), 'content-type': 'application/json', 'connect-protocol-version': '1' }),
      payload: JSON.stringify({ path: '/home/user' }),
    })
    expect(r.statusCode).toBe(404)
    expect(r.json()).toMatchObject({ code: 'not_found' })
  })

  it('bounds what one Connect message may make the manager hold', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/process.Process/SendInput',
      headers: envd('sbx-a', { 'x-access-token': envdAccessTokenFor(KEY, 'sbx-a'), 'content-type': 'application/json', 'connect-protocol-version': '1' }),
      payload: JSON.stringify({ process: { pid: 1 }, input: { stdin: Buffer.alloc(9 * 1024 * 1024).toString('base64') } }),
    })
    expect(r.json()).toMatchObject({ code: 'resource_exhausted' })
  })

  it('a request naming a sandbox but no usable port is a clear 502 (other ports are the preview front door\'s, before Fastify)', async () => {
    const r = await app.inject({ method: 'GET', url: '/', headers: { 'e2b-sandbox-id': 'sbx-a', 'x-access-token': envdAccessTokenFor(KEY, 'sbx-a') } })
    expect(r.statusCode).toBe(502)
    expect(r.json()).toMatchObject({ code: 502, error_code: 'e2b_port_unavailable' })
  })
})

describe('code interpreter routing (port 49999)', () => {
  const interp = (id: string, extra: Record<string, string> = {}) => ({ 'e2b-sandbox-id': id, 'e2b-sandbox-port': '49999', ...extra })
  const token = (id: string) => envdAccessTokenFor(KEY, id)

  it('needs the sandbox\'s token in X-Access-Token or E2B-Traffic-Access-Token (the context calls send only that one), or an API key', async () => {
    for (const headers of [interp('sbx-a'), interp('sbx-a', { 'e2b-traffic-access-token': token('sbx-b') }), interp('sbx-a', { 'x-access-token': 'wrong' })]) {
      const r = await app.inject({ method: 'GET', url: '/health', headers })
      expect(r.statusCode).toBe(401)
      expect(r.json()).toMatchObject({ code: 401, error_code: 'e2b_access_token_invalid' })
    }
    for (const headers of [interp('sbx-a', { 'e2b-traffic-access-token': token('sbx-a') }), interp('sbx-a', { 'x-access-token': token('sbx-a') }), interp('sbx-a', key)]) {
      expect((await app.inject({ method: 'GET', url: '/health', headers })).statusCode).toBe(200)
    }
  })

  it('a language other than Python is the execution\'s error, in the SDK\'s NDJSON, before any VM is touched', async () => {
    const r = await app.inject({ method: 'POST', url: '/execute', headers: interp('sbx-a', { 'x-access-token': token('sbx-a'), 'content-type': 'application/json' }), payload: JSON.stringify({ code: '1+1', language: 'js' }) })
    expect(r.statusCode).toBe(200)
    expect(r.headers['content-type']).toContain('application/x-ndjson')
    const lines = r.body.trim().split('\n').map((l) => JSON.parse(l) as { type: string; name?: string; value?: string })
    expect(lines.map((l) => l.type)).toEqual(['error', 'end_of_execution'])
    expect(lines[0]).toMatchObject({ name: 'UnsupportedLanguage', value: expect.stringContaining('Python only') })
    const ctx = await app.inject({ method: 'POST', url: '/contexts', headers: interp('sbx-a', { 'e2b-traffic-access-token': token('sbx-a'), 'content-type': 'application/json' }), payload: JSON.stringify({ language: 'typescript' }) })
    expect(ctx.statusCode).toBe(400)
    expect(ctx.json()).toMatchObject({ code: 400, error_code: 'unsupported_language' })
  })

  it('takes the SDK\'s bodiless JSON requests (restart, remove) and answers for a missing sandbox in E2B\'s shape', async () => {
    const headers = interp('sbx-a', { 'e2b-traffic-access-token': token('sbx-a'), 'content-type': 'application/json' })
    for (const [method, url] of [['POST', '/contexts/c1/restart'], ['DELETE', '/contexts/c1'], ['GET', '/contexts']] as const) {
      const r = await app.inject({ method, url, headers })
      expect(r.statusCode, `${method} ${url}`).toBe(404)
      expect(r.json()).toMatchObject({ code: 404, error_code: 'vm_not_found' })
    }
  })
})
