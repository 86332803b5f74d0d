// RATE_LIMIT_PER_MIN on the real app (FakeManager): counted per authenticated key (by its id,
// never by the secret), else per client address; 429 rate_limited with Retry-After; the probes
// exempt. METRICS_AUTH=none opens /metrics. A small limit, so each test uses its own key or address.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { FakeManager } from '../../harness/fake-manager.ts'

const LIMIT = 3
let m: FakeManager

beforeAll(async () => {
  m = await FakeManager.start({ env: { RATE_LIMIT_PER_MIN: String(LIMIT), METRICS_AUTH: 'none' } })
})
afterAll(() => m?.close())

const mint = async (name: string) => (await m.s.apiKeys.mint({ name }, 'test')).apiKey
const listVms = (key: string, remoteAddress = '127.0.0.1') => m.app.inject({ method: 'GET', url: '/v1/vms', headers: { 'x-api-key': key }, remoteAddress })

it(`a key's ${LIMIT + 1}th request within the minute is 429 rate_limited with Retry-After; another key is not held back by it`, async () => {
  const a = await mint('rl-a')
  const b = await mint('rl-b')
  for (let i = 0; i < LIMIT; i++) expect((await listVms(a)).statusCode).toBe(200)
  const over = await listVms(a)
  expect(over.statusCode).toBe(429)
  const retryAfter = Number(over.headers['retry-after'])
  expect(retryAfter).toBeGreaterThanOrEqual(1)
  expect(retryAfter).toBeLessThanOrEqual(60)
  expect(over.json()).toMatchObject({ code: 'rate_limited', retryAfterSeconds: retryAfter, requestId: over.headers['x-request-id'] })
  expect(over.json().message).toContain(`more than ${LIMIT} per minute`)
  expect((await listVms(b)).statusCode).toBe(200)
})

it('a key is one count from every address (keyed by the key, not the address)', async () => {
  const c = await mint('rl-c')
  for (let i = 0; i < LIMIT; i++) expect((await listVms(c, `127.0.0.${10 + i}`)).statusCode).toBe(200)
  expect((await listVms(c, '127.0.0.99')).statusCode).toBe(429)
})

it('without a key the count is per client address', async () => {
  const spec = (remoteAddress: string) => m.app.inject({ method: 'GET', url: '/openapi.json', remoteAddress })
  for (let i = 0; i < LIMIT; i++) expect((await spec('127.0.1.1')).statusCode).toBe(200)
  const over = await spec('127.0.1.1')
  expect(over.statusCode).toBe(429)
  expect(over.headers['retry-after']).toBeDefined()
  expect((await spec('127.0.1.2')).statusCode).toBe(200)
})

it('wrong keys are refused (401) before they count, so made-up keys cannot mint fresh counts or use up a real one', async () => {
  for (let i = 0; i < LIMIT + 2; i++) expect((await listVms(`made-up-key-${i}-0000000000`, '127.0.2.1')).statusCode).toBe(401)
  const d = await mint('rl-d')
  expect((await listVms(d, '127.0.2.1')).statusCode).toBe(200)
})

it('/health and /ready are never limited; /metrics is open with METRICS_AUTH=none', async () => {
  for (let i = 0; i < LIMIT + 2; i++) {
    expect((await m.app.inject({ method: 'GET', url: '/health', remoteAddress: '127.0.3.1' })).statusCode).toBe(200)
    expect((await m.app.inject({ method: 'GET', url: '/ready', remoteAddress: '127.0.3.1' })).statusCode).toBe(200)
  }
  const metrics = await m.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '127.0.3.2' })
  expect(metrics.statusCode).toBe(200)
  expect(metrics.body).toContain('rds_http_requests_total{route="/v1/vms",method="GET",status="429"}')
})
