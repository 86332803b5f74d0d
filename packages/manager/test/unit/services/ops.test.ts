// Health, readiness, metrics, request ids and the per-key VM quota, on the real services and the
// fake VMM (FakeManager): what an operator's probes, scraper and log search see.
import fs from 'node:fs'
import path from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { requestIdMixin } from '../../../src/api/request-id.ts'
import { FakeManager } from '../../harness/fake-manager.ts'
import { Http } from '../../../../sdk/src/http.ts'
import { RdsApiError } from '../../../../sdk/src/errors.ts'

let m: FakeManager
const logLines: Array<Record<string, unknown>> = []
const rawLines: string[] = []
const shape = { cpu: 1, memMb: 256, allowIps: [] }
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

beforeAll(async () => {
  // The manager's logger as main.ts builds it (the mixin), writing into this test.
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) {
        if (!line) continue
        rawLines.push(line)
        logLines.push(JSON.parse(line))
      }
      done()
    },
  })
  const log = pino({ level: 'info', mixin: (o, l, lg) => requestIdMixin(o, l, lg) }, sink)
  m = await FakeManager.start({ env: { QUOTA_MAX_VMS_PER_KEY: '1' }, log })
})
afterAll(() => m?.close())

const get = (url: string, headers: Record<string, string> = {}) => m.app.inject({ method: 'GET', url, headers })
const withKey = (key = m.apiKey) => ({ 'x-api-key': key })

/** One sample of the text format: `name{labels} value`, labels in prom-client's order. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}
const scrape = async () => (await get('/metrics', withKey())).body

describe('health and readiness', () => {
  it('GET /health answers without a key and does no work', async () => {
    const r = await get('/health')
    expect(r.statusCode).toBe(200)
    expect(r.json()).toMatchObject({ status: 'ok' })
    expect(r.json().uptimeSeconds).toBeGreaterThanOrEqual(0)
  })

  it('GET /ready is 200 with every check ok when the manager can create VMs', async () => {
    const r = await get('/ready')
    expect(r.statusCode).toBe(200)
    expect(r.json()).toEqual({ status: 'ready', checks: { database: { ok: true }, defaultImage: { ok: true }, network: { ok: true } } })
  })

  it('GET /ready is 503 not_ready naming the failed check when a default image file is gone, 200 again once it is back', async () => {
    const dir = m.s.paths.imageDir(m.imageId)
    const rootfs = path.join(dir, fs.readdirSync(dir).find((f) => f.includes('rootfs'))!)
    fs.renameSync(rootfs, `${rootfs}.away`)
    try {
      const r = await get('/ready')
      expect(r.statusCode).toBe(503)
      const body = r.json()
      expect(body).toMatchObject({ status: 'not_ready', code: 'not_ready', checks: { database: { ok: true }, network: { ok: true }, defaultImage: { ok: false } } })
      expect(body.message).toContain('defaultImage (a file of the default image is missing)')
      expect(body.requestId).toBe(r.headers['x-request-id'])
      // The probe is unauthenticated: it names what is wrong, never where on the host.
      expect(r.body).not.toContain(m.root)
    } finally {
      fs.renameSync(`${rootfs}.away`, rootfs)
    }
    expect((await get('/ready')).statusCode).toBe(200)
  })
})

describe('metrics', () => {
  it('GET /metrics needs a key (METRICS_AUTH=apikey by default): X-API-Key or Authorization: Bearer', async () => {
    const none = await get('/metrics')
    expect(none.statusCode).toBe(401)
    expect(none.json().code).toBe('unauthorized')
    expect((await get('/metrics', { authorization: 'Bearer wrong-key-000000' })).statusCode).toBe(401)
    const bearer = await get('/metrics', { authorization: `Bearer ${m.apiKey}` })
    expect(bearer.statusCode).toBe(200)
    const r = await get('/metrics', withKey())
    expect(r.statusCode).toBe(200)
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
  })

  it('has the process defaults, host memory and every VM state as a series from the start', async () => {
    const text = await scrape()
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0)
    expect(text).toContain('# TYPE nodejs_heap_size_total_bytes gauge')
    const total = sample(text, 'rds_host_memory_bytes{kind="total"}')!
    const available = sample(text, 'rds_host_memory_bytes{kind="available"}')!
    expect(total).toBeGreaterThan(0)
    expect(available).toBeGreaterThan(0)
    expect(available).toBeLessThanOrEqual(total)
    expect(sample(text, 'rds_guest_memory_bytes{kind="budget"}')).toBeGreaterThan(0)
    for (const state of ['CREATED', 'STARTING', 'RUNNING', 'PAUSED', 'STOPPING', 'STOPPED', 'ERROR']) expect(sample(text, `rds_vms{state="${state}",purpose="user"}`)).toBe(0)
    expect(sample(text, 'rds_warm_pool_ready')).toBe(0)
    expect(sample(text, 'rds_vm_create_seconds_count{mode="boot"}')).toBe(0)
  })

  it('follow a VM as it comes, runs a command, stops and goes; requests count by route pattern, never by URL', async () => {
    const created = await m.api('POST', '/v1/vms', shape)
    expect(created.status).toBe(201)
    const id = created.body.id
    let text = await scrape()
    expect(sample(text, 'rds_vms{state="RUNNING",purpose="user"}')).toBe(1)
    expect(sample(text, 'rds_vm_create_seconds_count{mode="boot"}')).toBe(1)
    expect(sample(text, 'rds_vm_create_seconds_sum{mode="boot"}')).toBeGreaterThan(0)
    expect(sample(text, 'rds_guest_memory_bytes{kind="used"}')).toBe(256 * 1024 * 1024)

    expect((await m.api('POST', `/v1/vms/${id}/exec`, { cmd: 'true' })).status).toBe(200)
    text = await scrape()
    expect(sample(text, 'rds_exec_seconds_count{kind="exec"}')).toBe(1)
    expect(sample(text, 'rds_exec_seconds_count{kind="run-ts"}')).toBe(0)

    expect((await m.api('POST', `/v1/vms/${id}/stop`)).status).toBe(204)
    text = await scrape()
    expect(sample(text, 'rds_vms{state="RUNNING",purpose="user"}')).toBe(0)
    expect(sample(text, 'rds_vms{state="STOPPED",purpose="user"}')).toBe(1)

    expect((await m.api('GET', `/v1/vms/${id}`)).status).toBe(200)
    expect((await m.api('DELETE', `/v1/vms/${id}`)).status).toBe(204)
    expect((await m.api('GET', `/v1/vms/${id}`)).status).toBe(404)
    text = await scrape()
    expect(sample(text, 'rds_vms{state="STOPPED",purpose="user"}')).toBe(0)
    expect(sample(text, 'rds_http_requests_total{route="/v1/vms",method="POST",status="201"}')).toBeGreaterThanOrEqual(1)
    expect(sample(text, 'rds_http_requests_total{route="/v1/vms/:id",method="GET",status="200"}')).toBeGreaterThanOrEqual(1)
    expect(sample(text, 'rds_http_requests_total{route="/v1/vms/:id",method="GET",status="404"}')).toBeGreaterThanOrEqual(1)
    expect(text).not.toContain(id)
    // A URL no route has is one series, whatever the URL.
    await get(`/no/such/${id}`)
    expect(sample(await scrape(), 'rds_http_requests_total{route="unmatched",method="GET",status="404"}')).toBeGreaterThanOrEqual(1)
  })
})

describe('request ids', () => {
  it('a sane incoming X-Request-Id is echoed, carried by the error body, and by the log lines of the request, the services\' included', async () => {
    const r = await m.app.inject({ method: 'POST', url: '/v1/vms', headers: { ...withKey(), 'x-request-id': 'trace-42.a:b' }, payload: shape })
    expect(r.statusCode).toBe(201)
    expect(r.headers['x-request-id']).toBe('trace-42.a:b')
    const mine = logLines.filter((l) => l.reqId === 'trace-42.a:b')
    // Fastify's request lines, and the provisioner's, which logs through the manager's logger, not req.log.
    expect(mine.map((l) => l.msg)).toEqual(expect.arrayContaining(['incoming request', 'VM created', 'request completed']))
    // No line carries the id twice (the mixin leaves req.log's lines alone: JSON would keep the last).
    expect(rawLines.filter((l) => l.includes('trace-42.a:b') && l.split('"reqId"').length !== 2)).toEqual([])
    expect(logLines.filter((l) => l.msg === 'VM created' && l.reqId === undefined)).toEqual([])
    expect((await m.api('DELETE', `/v1/vms/${r.json().id}`)).status).toBe(204)

    const missing = await m.app.inject({ method: 'GET', url: `/v1/vms/${r.json().id}`, headers: { ...withKey(), 'x-request-id': 'trace-43' } })
    expect(missing.statusCode).toBe(404)
    expect(missing.json()).toMatchObject({ code: 'vm_not_found', requestId: 'trace-43' })
  })

  it('an id that is too long, has spaces or control characters, or is repeated is replaced by a generated one', async () => {
    for (const given of ['x'.repeat(129), 'two words', 'a\u0001b', 'quote"d']) {
      const r = await m.app.inject({ method: 'GET', url: '/v1/nothing-here', headers: { ...withKey(), 'x-request-id': given } })
      expect(r.headers['x-request-id']).toMatch(UUID)
      expect(r.json()).toMatchObject({ code: 'not_found', requestId: r.headers['x-request-id'] })
    }
    const twice = await m.app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': ['a', 'b'] } })
    expect(twice.headers['x-request-id']).toMatch(UUID)
  })

  it('every error body has the id: validation, authentication, unknown route', async () => {
    const bad = await m.app.inject({ method: 'POST', url: '/v1/vms', headers: withKey(), payload: { cpu: 'many' } })
    const unauth = await get('/v1/vms')
    const unknown = await get('/nope')
    for (const r of [bad, unauth, unknown]) {
      expect(r.statusCode).toBeGreaterThanOrEqual(400)
      expect(r.json().requestId).toBe(r.headers['x-request-id'])
      expect(r.json().requestId).toMatch(UUID)
    }
  })

  it('the TypeScript SDK gives the id of a failed call as RdsApiError.requestId', async () => {
    // The SDK's own fetch option, answered by this manager's app.
    const viaApp = (async (url: string, init: RequestInit) => {
      const u = new URL(url)
      const r = await m.app.inject({ method: init.method as 'GET', url: u.pathname + u.search, headers: { ...(init.headers as Record<string, string>), 'x-request-id': 'sdk-call-7' } })
      return new Response(r.body, { status: r.statusCode, headers: r.headers as Record<string, string> })
    }) as unknown as typeof fetch
    const http = new Http({ baseUrl: 'http://manager.test', apiKey: m.apiKey, fetch: viaApp })
    const err = await http.json('GET', '/v1/vms/no-such-vm').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RdsApiError)
    expect(err).toMatchObject({ status: 404, code: 'vm_not_found', requestId: 'sdk-call-7' })
  })
})

describe('QUOTA_MAX_VMS_PER_KEY', () => {
  it('a minted key may have that many VMs; another key and the env key are not held back by it; a deleted VM frees its place', async () => {
    const a = (await m.s.apiKeys.mint({ name: 'quota-a' }, 'test')).apiKey
    const b = (await m.s.apiKeys.mint({ name: 'quota-b' }, 'test')).apiKey
    const create = (key: string) => m.app.inject({ method: 'POST', url: '/v1/vms', headers: withKey(key), payload: shape })
    const first = await create(a)
    expect(first.statusCode).toBe(201)
    const second = await create(a)
    expect(second.statusCode).toBe(429)
    expect(second.json()).toMatchObject({ code: 'quota_exceeded', message: 'VM quota exceeded (maxVmsPerKey=1)' })
    const other = await create(b)
    expect(other.statusCode).toBe(201)
    const env = await create(m.apiKey)
    expect(env.statusCode).toBe(201)
    // Stopped still counts (it holds its disk); deleted does not.
    expect((await m.app.inject({ method: 'POST', url: `/v1/vms/${first.json().id}/stop`, headers: withKey(a) })).statusCode).toBe(204)
    expect((await create(a)).statusCode).toBe(429)
    expect((await m.app.inject({ method: 'DELETE', url: `/v1/vms/${first.json().id}`, headers: withKey(a) })).statusCode).toBe(204)
    const again = await create(a)
    expect(again.statusCode).toBe(201)
    for (const id of [again.json().id, other.json().id, env.json().id]) expect((await m.api('DELETE', `/v1/vms/${id}`)).status).toBe(204)
  })
})
