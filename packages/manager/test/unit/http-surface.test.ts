// The HTTP surface without VMs: auth on every spelling of a /v1 path, schema errors as clear
// 4xx with stable codes, never a 500 for bad input. Uses app.inject on the real app with a
// real (empty) SQLite store.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FastifyInstance } from 'fastify'
import { keyMatches } from '../../src/api/auth.ts'
import { testApp } from '../harness/app.ts'

let app: FastifyInstance
let root: string
let close: () => Promise<void>
const KEY = 'unit-test-key'

beforeAll(async () => {
  ;({ app, root, close } = await testApp(KEY))
})
afterAll(() => close())

describe('API key', () => {
  it('compares keys exactly', () => {
    expect(keyMatches('abc', 'abc')).toBe(true)
    expect(keyMatches('abd', 'abc')).toBe(false)
    expect(keyMatches('abc ', 'abc')).toBe(false)
    expect(keyMatches('', 'abc')).toBe(false)
    expect(keyMatches(undefined, 'abc')).toBe(false)
  })

  const spellings = ['/v1/vms', '/v1//vms', '/v1/./vms', '/v1/%76ms', '/v1/vms/', '/v1/x/../vms', '/v1/vms?x=1', '/v1/vms#a', '/V1/vms', '//v1/vms', '/v1/%2e/vms', '/v1/vms/%2e%2e/vms', '/v1/images', '/v1/snapshots']
  for (const url of spellings) {
    it(`never answers ${url} without a valid key`, async () => {
      for (const headers of [{}, { 'x-api-key': 'wrong' }, { 'x-api-key': '' }]) {
        const r = await app.inject({ method: 'GET', url, headers })
        expect([401, 404]).toContain(r.statusCode)
        expect(r.json().code).toMatch(/^(unauthorized|not_found)$/)
      }
    })
  }

  it('accepts the key and leaves /openapi.json and /docs public', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/vms', headers: { 'x-api-key': KEY } })).statusCode).toBe(200)
    expect((await app.inject({ method: 'GET', url: '/openapi.json' })).statusCode).toBe(200)
    expect((await app.inject({ method: 'GET', url: '/docs/' })).statusCode).toBe(200)
  })
})

describe('bad input gets a clear 4xx', () => {
  const h = { 'x-api-key': KEY, 'content-type': 'application/json' }
  const cases: Array<[string, string, string | undefined, number, string]> = [
    ['POST', '/v1/vms', '{"cpu":1', 400, 'invalid_json'],
    ['POST', '/v1/vms', '{}', 400, 'validation_failed'],
    ['POST', '/v1/vms', '{"cpu":"x","memMb":256,"allowIps":[]}', 400, 'validation_failed'],
    // Unknown fields are dropped as the original's validator did; a typo in a required one still fails.
    ['POST', '/v1/vms', '{"cpu":1,"memMb":256,"allowIps":[],"bogus":1}', 400, 'no_default_image'],
    ['POST', '/v1/vms', '{"cpu":1,"memMB":256,"allowIps":[]}', 400, 'validation_failed'],
    ['POST', '/v1/vms', '{"cpu":99,"memMb":256,"allowIps":[]}', 400, 'invalid_cpu'],
    ['POST', '/v1/vms', '{"cpu":1.5,"memMb":256,"allowIps":[]}', 400, 'invalid_cpu'],
    ['POST', '/v1/vms', '{"cpu":1,"memMb":999999,"allowIps":[]}', 400, 'invalid_mem_mb'],
    ['POST', '/v1/vms', '{"cpu":1,"memMb":256,"allowIps":[],"imageId":"nope"}', 404, 'image_not_found'],
    ['POST', '/v1/vms', '{"cpu":1,"memMb":256,"allowIps":[]}', 400, 'no_default_image'],
    ['GET', '/v1/vms/does-not-exist', undefined, 404, 'vm_not_found'],
    ['GET', '/v1/vms/undefined', undefined, 400, 'invalid_vm_id'],
    ['POST', '/v1/vms/%20/stop', undefined, 400, 'invalid_vm_id'],
    ['GET', '/v1/vms/..%2f..%2fetc', undefined, 404, 'vm_not_found'],
    ['POST', '/v1/vms/nope/exec', '{"cmd":"true"}', 404, 'vm_not_found'],
    ['POST', '/v1/vms/nope/exec', '{"cmd":5}', 400, 'validation_failed'],
    ['POST', '/v1/vms/nope/run-ts', '{"code":"1","env":"A=1"}', 400, 'validation_failed'],
    ['POST', '/v1/vms/nope/start', undefined, 404, 'vm_not_found'],
    ['DELETE', '/v1/vms/nope', undefined, 404, 'vm_not_found'],
    ['GET', '/v1/vms/nope/logs?type=../../etc/passwd', undefined, 400, 'bad_request'],
    ['POST', '/v1/images', '{"name":" ","description":"d"}', 400, 'bad_request'],
    ['POST', '/v1/images/nope/set-default', undefined, 404, 'image_not_found'],
    ['DELETE', '/v1/images/nope', undefined, 404, 'image_not_found'],
    ['GET', '/v1/nothing-here', undefined, 404, 'not_found'],
  ]
  for (const [method, url, payload, status, code] of cases) {
    it(`${method} ${url} ${payload ?? ''} -> ${status} ${code}`, async () => {
      const r = await app.inject({ method: method as 'GET', url, headers: h, payload })
      expect(r.statusCode).toBe(status)
      expect(r.json()).toMatchObject({ code, message: expect.any(String) })
      expect(r.json().message.length).toBeGreaterThan(3)
    })
  }

  it('refuses an oversized JSON body with 413', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/vms', headers: h, payload: JSON.stringify({ cpu: 1, memMb: 256, allowIps: ['x'.repeat(300_000)] }) })
    expect(r.statusCode).toBe(413)
    expect(r.json().code).toBe('payload_too_large')
  })

  it('creates, lists, defaults and deletes an image record', async () => {
    const c = await app.inject({ method: 'POST', url: '/v1/images', headers: h, payload: { name: 'n', description: 'd' } })
    expect(c.statusCode).toBe(201)
    const id = c.json().id
    expect((await app.inject({ method: 'POST', url: `/v1/images/${id}/set-default`, headers: h })).statusCode).toBe(204)
    const list = (await app.inject({ method: 'GET', url: '/v1/images', headers: h })).json()
    expect(list.find((i: { id: string }) => i.id === id)).toMatchObject({ isDefault: true, hasKernel: false })
    const r = await app.inject({ method: 'POST', url: '/v1/vms', headers: h, payload: { cpu: 1, memMb: 256, allowIps: [] } })
    expect(r.statusCode).toBe(400)
    expect(r.json().code).toBe('image_incomplete')
    expect((await app.inject({ method: 'DELETE', url: `/v1/images/${id}`, headers: h })).statusCode).toBe(204)
    expect(fs.existsSync(path.join(root, 'images', id))).toBe(false)
  })
})
