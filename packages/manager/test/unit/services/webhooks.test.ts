// Webhooks on the real services, database and HTTP surface (fake VMM), delivering to a real
// receiver on loopback: signed deliveries, event filters, retries with backoff, the delivery
// log, the test event, and deliveries that wait across a manager restart.
import crypto from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FakeManager } from '../../harness/fake-manager.ts'

const EMAIL = 'hooks@example.com'
const PASSWORD = 'a long enough password'
let m: FakeManager
let admin: { cookies: { rds_session: string }; headers: Record<string, string> }

interface Received {
  headers: http.IncomingHttpHeaders
  body: string
}

/** A receiver on loopback; `answer` decides each request's status (or never answers with 0). */
class Receiver {
  readonly got: Received[] = []
  answer: (n: number) => number = () => 200
  private server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString('utf8')))
    req.on('end', () => {
      this.got.push({ headers: req.headers, body })
      const status = this.answer(this.got.length)
      if (status) res.writeHead(status).end()
    })
  })
  port = 0
  async listen(port = 0): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve))
    this.port = (this.server.address() as AddressInfo).port
  }
  close(): Promise<void> {
    this.server.closeAllConnections()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`
  }
  of(type: string): Received[] {
    return this.got.filter((r) => r.headers['x-rds-event'] === type)
  }
}

const asAdmin = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) => {
  const r = await m.app.inject({ method, url, ...admin, ...(payload ? { payload } : {}) })
  return { status: r.statusCode, body: r.body ? r.json() : undefined }
}

const verify = (secret: string, r: Received): boolean => {
  const [t, v1] = String(r.headers['x-rds-signature']).split(',').map((p) => p.split('=')[1])
  const expected = crypto.createHmac('sha256', secret).update(`${t}.${r.body}`).digest('hex')
  return v1 === expected && Math.abs(Date.now() / 1000 - Number(t)) < 300
}

async function login() {
  const r = await m.app.inject({ method: 'POST', url: '/auth/login', payload: { email: EMAIL, password: PASSWORD } })
  admin = { cookies: { rds_session: r.cookies.find((c) => c.name === 'rds_session')!.value }, headers: { 'x-csrf-token': r.json().csrfToken } }
}

beforeAll(async () => {
  m = await FakeManager.start({ env: { ADMIN_EMAIL: EMAIL, ADMIN_PASSWORD: PASSWORD, WEBHOOK_RETRY_BASE_MS: '50', WEBHOOK_TIMEOUT_MS: '2000', WEBHOOK_MAX_ATTEMPTS: '4' } })
  await login()
})
afterAll(() => m?.close())

describe('managing webhooks', () => {
  it('needs an admin session: an API key is refused', async () => {
    expect((await m.api('GET', '/v1/admin/webhooks')).body).toMatchObject({ code: 'session_required' })
    expect((await m.api('POST', '/v1/admin/webhooks', { name: 'x', url: 'http://127.0.0.1:1/', eventTypes: ['*'] })).status).toBe(403)
  })

  it('checks name, URL and event types with clear answers', async () => {
    const bad = async (body: object) => (await asAdmin('POST', '/v1/admin/webhooks', body)).body
    expect(await bad({ name: ' ', url: 'http://127.0.0.1/', eventTypes: ['*'] })).toMatchObject({ code: 'invalid_webhook', message: 'name is required' })
    expect(await bad({ name: 'x', url: 'not a url', eventTypes: ['*'] })).toMatchObject({ code: 'invalid_webhook', message: 'url must be a valid URL' })
    expect(await bad({ name: 'x', url: 'file:///etc/passwd', eventTypes: ['*'] })).toMatchObject({ code: 'invalid_webhook' })
    expect(await bad({ name: 'x', url: 'http://u:p@127.0.0.1/', eventTypes: ['*'] })).toMatchObject({ code: 'invalid_webhook' })
    expect(await bad({ name: 'x', url: 'http://127.0.0.1/', eventTypes: [] })).toMatchObject({ code: 'invalid_webhook' })
    expect(await bad({ name: 'x', url: 'http://127.0.0.1/', eventTypes: ['no spaces allowed'] })).toMatchObject({ code: 'invalid_webhook' })
    expect(await bad({ url: 'http://127.0.0.1/', eventTypes: ['*'] })).toMatchObject({ code: 'validation_failed' })
    expect((await asAdmin('PATCH', '/v1/admin/webhooks/wh-nope', { enabled: false })).body).toMatchObject({ code: 'webhook_not_found' })
    expect((await asAdmin('DELETE', '/v1/admin/webhooks/wh-nope')).status).toBe(404)
  })

  it('shows the secret once and stores it sealed; PATCH and DELETE change and remove', async () => {
    const made = await asAdmin('POST', '/v1/admin/webhooks', { name: 'n8n', url: 'http://127.0.0.1:9/x', eventTypes: ['vm.created'] })
    expect(made).toMatchObject({ status: 201, body: { name: 'n8n', enabled: true, eventTypes: ['vm.created'], createdBy: `admin:${EMAIL}`, secret: expect.stringMatching(/^whsec_/) } })
    const { id, secret } = made.body
    expect((await asAdmin('GET', '/v1/admin/webhooks')).body.find((h: { id: string }) => h.id === id)).not.toHaveProperty('secret')
    const row = await m.s.db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
    expect(JSON.stringify(row)).not.toContain(secret.slice(6))
    expect((await asAdmin('PATCH', `/v1/admin/webhooks/${id}`, { enabled: false, eventTypes: ['*'] })).body).toMatchObject({ enabled: false, eventTypes: ['*'] })
    // The original's PATCH checks, line by line: a name may not be emptied, nor the url broken, nor the event list emptied.
    expect((await asAdmin('PATCH', `/v1/admin/webhooks/${id}`, { name: '  ' })).body).toMatchObject({ code: 'invalid_webhook', message: 'name cannot be empty' })
    expect((await asAdmin('PATCH', `/v1/admin/webhooks/${id}`, { url: 'not a url' })).body).toMatchObject({ code: 'invalid_webhook', message: 'url must be a valid URL' })
    expect((await asAdmin('PATCH', `/v1/admin/webhooks/${id}`, { eventTypes: [] })).body).toMatchObject({ code: 'invalid_webhook' })
    expect((await asAdmin('GET', '/v1/admin/webhooks')).body.find((h: { id: string }) => h.id === id)).toMatchObject({ name: 'n8n', url: 'http://127.0.0.1:9/x' })
    expect((await asAdmin('DELETE', `/v1/admin/webhooks/${id}`)).status).toBe(204)
    expect((await asAdmin('GET', `/v1/admin/webhooks/${id}/deliveries`)).status).toBe(404)
  })
})

describe('deliveries', () => {
  const receiver = new Receiver()
  beforeAll(() => receiver.listen())
  afterAll(() => receiver.close())

  it('POSTs each wanted event, signed, and only to enabled webhooks that want its type', async () => {
    const all = (await asAdmin('POST', '/v1/admin/webhooks', { name: 'all', url: receiver.url, eventTypes: ['vm.created', 'vm.deleted'] })).body
    const off = (await asAdmin('POST', '/v1/admin/webhooks', { name: 'off', url: `${receiver.url}?off`, enabled: false, eventTypes: ['*'] })).body
    const { body: vm } = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
    await m.waitFor('the vm.created delivery', async () => receiver.of('vm.created').length === 1)
    const [r] = receiver.of('vm.created')
    expect(r!.headers['content-type']).toBe('application/json')
    expect(verify(all.secret, r!)).toBe(true)
    expect(verify(off.secret, r!)).toBe(false)
    expect(JSON.parse(r!.body)).toMatchObject({ type: 'vm.created', entityType: 'vm', entityId: vm.id, actor: 'env:API_KEY', source: { service: 'run-dat-sheesh-manager' } })
    // vm.started is not wanted by `all`, and `off` is disabled.
    expect(receiver.of('vm.started')).toEqual([])
    // The receiver has it before the manager has read the answer: the log follows a moment later.
    const logged = await m.waitFor('the delivery logged', async () => {
      const [d] = (await asAdmin('GET', `/v1/admin/webhooks/${all.id}/deliveries`)).body
      return d?.status !== 'pending' && d
    })
    expect(logged).toMatchObject({ eventType: 'vm.created', status: 'delivered', attempts: 1, lastStatus: 200, lastError: null })
    expect((await asAdmin('GET', `/v1/admin/webhooks/${off.id}/deliveries`)).body).toEqual([])
    await m.api('DELETE', `/v1/vms/${vm.id}`)
    await m.waitFor('the vm.deleted delivery', async () => receiver.of('vm.deleted').length === 1)
    for (const h of [all, off]) await asAdmin('DELETE', `/v1/admin/webhooks/${h.id}`)
  })

  it('retries a receiver that fails, with backoff, until it answers; gives up after WEBHOOK_MAX_ATTEMPTS', async () => {
    receiver.got.length = 0
    receiver.answer = (n) => (n <= 2 ? 503 : 200)
    const hook = (await asAdmin('POST', '/v1/admin/webhooks', { name: 'flaky', url: receiver.url, eventTypes: ['webhook.test'] })).body
    expect((await asAdmin('POST', `/v1/admin/webhooks/${hook.id}/test`)).status).toBe(202)
    const delivered = await m.waitFor('a delivery after two failures', async () => {
      const [d] = (await asAdmin('GET', `/v1/admin/webhooks/${hook.id}/deliveries`)).body
      return d?.status === 'delivered' && d
    })
    expect(delivered).toMatchObject({ attempts: 3, lastStatus: 200 })
    expect(receiver.of('webhook.test')).toHaveLength(3)
    // The same body, signed each time.
    expect(new Set(receiver.of('webhook.test').map((r) => r.body)).size).toBe(1)
    expect(receiver.of('webhook.test').every((r) => verify(hook.secret, r))).toBe(true)

    receiver.answer = () => 0 // never answers: each attempt times out
    await asAdmin('POST', `/v1/admin/webhooks/${hook.id}/test`)
    const failed = await m.waitFor('a delivery given up', async () => {
      const [d] = (await asAdmin('GET', `/v1/admin/webhooks/${hook.id}/deliveries`)).body
      return d?.status === 'failed' && d
    }, 60_000)
    expect(failed).toMatchObject({ attempts: 4, lastStatus: null, lastError: expect.stringContaining('no answer within 2000 ms') })
    receiver.answer = () => 200
    await asAdmin('DELETE', `/v1/admin/webhooks/${hook.id}`)
  })

  it('keeps deliveries queued across a manager restart and delivers them after it', async () => {
    // Retries a second apart from here on: the one left pending must outlive the restart.
    m.env.WEBHOOK_RETRY_BASE_MS = '1000'
    await m.restart()
    await login()
    const port = receiver.port
    await receiver.close()
    const hook = (await asAdmin('POST', '/v1/admin/webhooks', { name: 'later', url: `http://127.0.0.1:${port}/hook`, eventTypes: ['webhook.test'] })).body
    await asAdmin('POST', `/v1/admin/webhooks/${hook.id}/test`)
    await m.waitFor('a failed first attempt', async () => (await asAdmin('GET', `/v1/admin/webhooks/${hook.id}/deliveries`)).body[0]?.attempts >= 1)
    await m.restart()
    await login()
    receiver.got.length = 0
    await receiver.listen(port)
    const d = await m.waitFor('the delivery after the restart', async () => {
      const [x] = (await asAdmin('GET', `/v1/admin/webhooks/${hook.id}/deliveries`)).body
      return x?.status === 'delivered' && x
    }, 15_000)
    expect(d.attempts).toBeGreaterThanOrEqual(2)
    expect(receiver.of('webhook.test')).toHaveLength(1)
  })
})
